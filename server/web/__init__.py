"""The operations map: a static page served by the server, fed by the live API and its WebSocket."""
