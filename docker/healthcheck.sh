#!/bin/sh
# HEALTHCHECK of the betanet image: GET /health on the node's HTTP endpoint.
addr=${BETANET_NODE__HTTP_ADDR:-0.0.0.0:9101}
port=${addr##*:}
host=${addr%:*}
case "$host" in
"" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;;
esac
exec curl -fsS -o /dev/null --max-time 2 "http://$host:$port/health"
