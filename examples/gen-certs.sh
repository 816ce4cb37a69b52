#!/usr/bin/env bash
# Creates the certificates the tls, mtls and wss examples name, in ./certs/:
#   certs/ca.pem, certs/ca.key          a CA that signs both sides
#   certs/server.pem, certs/server.key  the router server (names: rgost.example and SERVER_ADDR if given)
#   certs/client.pem, certs/client.key  a client certificate (for mtls)
#
# Run in the directory you will start rgost from (paths in the examples are
# relative to the working directory):
#   cd examples/tls && bash ../gen-certs.sh 203.0.113.7
# Needs openssl. For production, use your own CA or an ACME client instead.
set -euo pipefail

server_addr="${1:-}"
mkdir -p certs
cd certs

san="DNS:rgost.example"
if [[ -n "$server_addr" ]]; then
    if [[ "$server_addr" =~ ^[0-9.]+$ || "$server_addr" == *:* ]]; then
        san="$san,IP:$server_addr"
    else
        san="$san,DNS:$server_addr"
    fi
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=rgost example CA" -keyout ca.key -out ca.pem 2>/dev/null

sign() { # name subject san extended-key-usage
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$4") -out "$1.pem" 2>/dev/null
    rm -f "$1.csr"
}
sign server rgost.example "$san" serverAuth
sign client rgost-client "DNS:rgost-client" clientAuth
rm -f ca.srl
echo "certs/: ca.pem server.pem server.key client.pem client.key (server names: $san)"
