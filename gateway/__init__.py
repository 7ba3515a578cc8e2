"""The SSE broadcast gateway service.

Data flows one way: producer -> Redis -> broker -> hub -> subscription -> SSE response.

    settings.py       one typed Settings object (GATEWAY_* variables)
    broker/           Redis: one pub/sub connection per process, history reads, publishes
    hub.py            channel -> local subscribers; continuity and recovery per channel
    subscription.py   one client's bounded buffer and cursor
    sse.py            subscription -> EventSourceResponse (preamble, replay, live, farewell)
    api/              routes and dependencies only
    app.py            create_app(settings) and its lifespan
"""
