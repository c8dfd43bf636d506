"""FastAPI routers. Each router takes its dependencies through ``server.api.deps`` so that an
authentication dependency can later be added per router (``APIRouter(dependencies=[...])``)."""
