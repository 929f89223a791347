"""`rag serve`: the answers of `rag ask` in a browser and over HTTP, with the models kept warm.

    service.py  the index, retriever, answerer and models loaded once; the worker threads and
                the LLM's queue; the calls the routes make (ask, search, sources, health)
    app.py      the FastAPI app: the page, /api/*, /v1/chat/completions, the token and size
                guard, one-line JSON errors, server-sent events
    models.py   the pydantic models of requests and replies (the OpenAPI description)
    chat.py     the OpenAI chat-completions wire format
    static/     the page (HTML, script, style), shipped in the package: no CDN, no fonts

FastAPI and uvicorn come with the `serve` extra; nothing else in rag imports this package.
"""
