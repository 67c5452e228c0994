"""The change calendar: maintenance windows, freezes, service dependencies and collisions.

- :mod:`~gonogo.core.calendar.times`: intervals in UTC, weekly windows in a local
  time zone (correct across daylight-saving changes), and which intervals overlap.
- :mod:`~gonogo.core.calendar.model`: the calendar file and how it is read, every
  problem located.
- :mod:`~gonogo.core.calendar.rules`: the rules ``gonogo validate`` and
  ``before_start`` apply, and the collisions between planned changes.
- :mod:`~gonogo.core.calendar.listing`: what is planned in a period, for
  ``gonogo calendar`` and the Calendar page.

Pure: no Airflow import, no network.
"""

from __future__ import annotations
