"""The local API gateway: template.yaml's REST routes on 127.0.0.1, served in-process as API
Gateway would serve them (proxy events v1.0, the REQUEST authorizer with its cache, gateway
responses), plus ``invoke``, the Docker-free twin of ``sam local invoke``."""
