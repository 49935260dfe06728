#!/bin/sh
# Regenerates the TEST-ONLY PKI of the provider TLS tests (never used outside tests): a CA, a
# server certificate for 127.0.0.1/localhost and a client certificate for mTLS, EC P-256, valid
# for 100 years so the committed files do not expire under the tests.
set -eu
cd "$(dirname "$0")"
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
  -days $days -subj "/CN=kluctl-notify-test-ca" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' > server.cnf
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > client.cnf
for n in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$n.key" -out "$n.csr" \
    -subj "/CN=notify-test-$n" 2>/dev/null
  openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$n.crt" -days $days \
    -extfile "$n.cnf" 2>/dev/null
  rm -f "$n.csr" "$n.cnf"
done
rm -f ca.key ca.srl
