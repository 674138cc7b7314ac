"""Glue for running user coroutines from engine threads."""


async def as_coroutine(awaitable):
    """Any awaitable as a coroutine (run_coroutine_threadsafe takes only coroutines)."""
    return await awaitable
