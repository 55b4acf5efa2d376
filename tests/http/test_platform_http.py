"""Operations endpoints, the PWA shell, security headers and error pages."""

HX = {"HX-Request": "true"}


async def test_health_ready_metrics_and_schema(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    await client.get("/")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and 'litestar_requests_total{app_name="forecourt"' in metrics.text
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/me" in schema["paths"] and "/api/v1/api-keys" in schema["paths"]
    assert not any(p.startswith(("/sign-in", "/dashboard", "/admin")) for p in schema["paths"])
    assert "apiKey" in schema["components"]["securitySchemes"]


async def test_request_id_is_echoed_or_made(client):
    response = await client.get("/health", headers={"X-Request-ID": "abc12345-from-proxy"})
    assert response.headers["x-request-id"] == "abc12345-from-proxy"
    made = await client.get("/health", headers={"X-Request-ID": "<script>"})
    assert made.headers["x-request-id"] != "<script>" and len(made.headers["x-request-id"]) == 16


async def test_security_headers_and_no_inline_script(client):
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text and " on" + "click=" not in response.text


async def test_public_home_full_and_fragment(client, session):
    from tests.factories import make_branch

    branch = await make_branch(session)
    full = await client.get("/", headers={"Accept-Language": "en"})
    assert full.status_code == 200 and branch.name_en in full.text and 'rel="manifest"' in full.text
    fragment = await client.get("/", headers=HX | {"Accept-Language": "en"})
    assert "<html" not in fragment.text and branch.name_en in fragment.text


async def test_manifest_and_service_worker(client):
    manifest = await client.get("/manifest.webmanifest", headers={"Accept-Language": "zh-CN"})
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    data = manifest.json()
    assert data["display"] == "standalone" and data["start_url"].startswith("/") and data["lang"] == "zh-CN"
    sizes = {(i["sizes"], i["purpose"]) for i in data["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in data["icons"]:
        image = await client.get(icon["src"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    worker = await client.get("/sw.js")
    assert worker.headers["content-type"].startswith("application/javascript")
    assert "/offline" in worker.text and "forecourt-shell-" in worker.text
    offline = await client.get("/offline")
    assert offline.status_code == 200 and "offline" in offline.text.lower()


async def test_versioned_static_files_are_cached(client):
    response = await client.get("/static/vendor/htmx/htmx.min.js")
    assert response.status_code == 200 and "max-age=31536000" in response.headers["cache-control"]


async def test_not_found_in_every_shape_and_language(client):
    page = await client.get("/no-such-page", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 404 and "未找到" in page.text and "<html" in page.text
    toast = await client.get("/no-such-page", headers=HX)
    assert toast.status_code == 404 and "toast" in toast.text and "<html" not in toast.text
    api = await client.get("/api/v1/nothing")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


async def test_oversized_body_gets_413(client, settings):
    await client.get("/sign-in")
    response = await client.post("/sign-in", content=b"x" * (settings.max_body_bytes + 1),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert "too large" in response.text


async def test_method_not_allowed_is_not_a_500(client):
    response = await client.put("/health")
    assert response.status_code in (403, 405)


async def test_sign_in_comes_back_to_the_page_asked_for_with_its_query(client, session, redis):
    from tests.factories import make_user
    from tests.helpers import csrf_token

    response = await client.get("/admin/audit/?before=5")
    assert response.headers["location"] == "/sign-in?next=%2Fadmin%2Faudit%3Fbefore%3D5"
    admin = await make_user(session, redis, role="admin")
    token = await csrf_token(client)
    signed = await client.post("/sign-in", data={"email": admin.email, "password": "correct-horse-battery",
                                                 "next": "/admin/audit/?before=5", "_csrf_token": token})
    assert signed.headers["location"] == "/admin/audit/?before=5"


async def test_metrics_token_and_head_health(client, settings, monkeypatch):
    assert (await client.head("/health")).status_code == 200
    monkeypatch.setattr(settings, "metrics_token", "scrape-secret")
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})).status_code == 200


async def test_only_the_api_reference_page_relaxes_the_csp(client):
    docs = await client.get("/schema")
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    home = await client.get("/")
    assert "cdn.jsdelivr.net" not in home.headers["content-security-policy"]


async def test_back_button_history_restore_gets_the_whole_page(client):
    restored = await client.get("/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restored.text and "HX-Request" in restored.headers["vary"]
