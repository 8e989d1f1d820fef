"""How long a test waits for something that must happen before it calls it a hang.

Only a guard, never a measure: a test goes on the moment the event happens, so a generous
guard costs nothing when the code works, and a shared, busy 2-core machine can be many times
slower than a quiet one. How fast things happen is measured in `bench/`, not asserted here."""

HANG = 90.0
