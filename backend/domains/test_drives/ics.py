"""A test drive as an iCalendar file (RFC 5545), for "add to my calendar" on the customer's phone."""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event

PRODID = "-//Forecourt//Test drives//EN"


def calendar_file(*, uid: str, summary: str, description: str, location: str, start: datetime, end: datetime,
                  url: str, stamp: datetime, cancelled: bool = False) -> bytes:
    """One event with a reminder two hours before. ``uid`` stays the same for the same drive, so a calendar
    that imports the file again (after a reschedule) moves the event instead of adding a second one."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    event.add("location", location)
    event.add("url", url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if not cancelled:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", summary)
        alarm.add("trigger", timedelta(hours=-2))
        event.add_component(alarm)
    calendar.add_component(event)
    return calendar.to_ical()
