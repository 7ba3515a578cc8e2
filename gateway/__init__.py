"""The SSE broadcast gateway service.

Data flows one way: producer -> Redis -> broker -> hub -> subscription -> SSE response.

    settings.py       one typed Settings object (GATEWAY_* variables)
    broker/           Redis: one pub/sub connection per process, history reads, publishes
    hub.py            channel -> local subscribers; continuity and recovery per channel
    subscription.py   one client's bounded buffer and cursor
    events.py         a message -> SSE bytes (sse-starlette's ServerSentEvent), once per process
    sse.py            subscription -> stream response (preamble, replay, live, farewell)
    ndjson.py         the same subscription as JSON lines
    limits.py         the lean stream response, connection cap, write watchdog hook
    shutdown.py       SIGTERM -> drain streams over a window, then let uvicorn stop
    auth/, cors.py    JWT rights per channel, CORS allow-list
    metrics.py, logs.py   Prometheus metrics, JSON logs with request ids
    api/              routes and dependencies only (fast.py: lean path for the common requests)
    app.py            create_app(settings) and its lifespan
"""
