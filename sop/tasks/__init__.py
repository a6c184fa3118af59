"""The staff side of tasks: what a staff member does with a nudge, and what happens when they
do nothing.

- :mod:`sop.tasks.state`: the transitions (done, snooze, skip, expire, reassign), each with
  its history entry, waking the playbook that waits on the task.
- :mod:`sop.tasks.cards`: a card press changes the task; the card is updated to say so.
- :mod:`sop.tasks.commands`: the same by typing to the app (``done 42``, ``tasks``).
- :mod:`sop.tasks.followups`: snoozes that end, overdue reminders, escalation to the manager.
- :mod:`sop.tasks.digests`: the daily digest per staff member, the weekly one per manager.
"""
