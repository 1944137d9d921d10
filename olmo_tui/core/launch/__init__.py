"""A run's life through a backend: the launch pre-flight, starting (now, or queued for the
detached worker that calls a notify hook), refreshing, cancelling, relaunching; the worker and
the hook calls themselves."""
