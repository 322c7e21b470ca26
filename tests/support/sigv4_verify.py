#!/usr/bin/python3
"""sigv4_verify.py — a verifying proxy in front of an S3 server that checks
nothing itself (s3rver: any well-formed V4 header passes). Every request is
re-signed with botocore (AWS's own signer, Debian's python3-botocore) from
its decoded path and query, and refused the way S3 refuses it when anything
differs: 403 SignatureDoesNotMatch, InvalidAccessKeyId, InvalidToken,
400 ExpiredToken, XAmzContentSHA256Mismatch, AuthorizationHeaderMalformed,
RequestTimeTooSkewed. What passes is forwarded to the upstream server
unchanged and its answer relayed.

  sigv4_verify.py --port P --upstream HOST:PORT --keys FILE --log FILE
                  [--region us-east-1] [--upstream-key ID] [--cert PEM --key PEM]

FILE holds one credential a line: "KEY_ID SECRET" (long-term) or
"KEY_ID SECRET TOKEN EXPIRY_EPOCH" (temporary); it is re-read when it
changes, so a fake credentials endpoint can add the ones it hands out.
The log gets one line per request: "ok 200 METHOD PATH key=ID
token=yes|no conn=CLIENT_PORT" or "refused CODE METHOD PATH". With --cert the proxy speaks HTTPS. Prints "listening on
PORT" once it accepts connections."""
import argparse
import hashlib
import hmac
import http.client
import http.server
import os
import ssl
import sys
import threading
import time
from urllib.parse import quote, unquote_to_bytes, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HOP = {'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer',
       'upgrade'}
ARGS = None
KEYS = {'mtime': None, 'map': {}}
KEYS_LOCK = threading.Lock()
LOG_LOCK = threading.Lock()


def keys():
    with KEYS_LOCK:
        try:
            m = os.stat(ARGS.keys).st_mtime_ns
        except OSError:
            return {}
        if m != KEYS['mtime']:
            table = {}
            with open(ARGS.keys) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 2:
                        table[p[0]] = (p[1], None, None)
                    elif len(p) == 4:
                        table[p[0]] = (p[1], p[2], float(p[3]))
            KEYS['map'], KEYS['mtime'] = table, m
        return KEYS['map']


class Refused(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def parse_auth(value):
    if not value.startswith('AWS4-HMAC-SHA256 '):
        raise Refused(400, 'AuthorizationHeaderMalformed', 'not AWS4-HMAC-SHA256: %.40s' % value)
    parts = {}
    for item in value[len('AWS4-HMAC-SHA256 '):].split(','):
        k, _, v = item.strip().partition('=')
        parts[k] = v
    try:
        key_id, day, region, service, term = parts['Credential'].split('/')
        return key_id, day, region, service, term, parts['SignedHeaders'], parts['Signature']
    except (KeyError, ValueError):
        raise Refused(400, 'AuthorizationHeaderMalformed', 'malformed: %.200s' % value)


def verify(method, raw_path, headers, body):
    """Raises Refused unless the request is signed right; returns (key, token?)."""
    auth = headers.get('Authorization')
    if auth is None:
        raise Refused(403, 'AccessDenied', 'anonymous request (no Authorization header)')
    key_id, day, region, service, term, signed, signature = parse_auth(auth)
    if region != ARGS.region or service != 's3' or term != 'aws4_request':
        raise Refused(400, 'AuthorizationHeaderMalformed',
                      'scope %s/%s/%s; expecting region %s' % (region, service, term, ARGS.region))
    known = keys().get(key_id)
    if known is None:
        raise Refused(403, 'InvalidAccessKeyId', 'The AWS Access Key Id %s does not exist' % key_id)
    secret, token, expiry = known
    sent_token = headers.get('x-amz-security-token')
    signed_set = signed.split(';')
    for must in ('host', 'x-amz-date', 'x-amz-content-sha256'):
        if must not in signed_set:
            raise Refused(403, 'AccessDenied', '%s is not signed' % must)
    for name in headers.keys():
        if name.lower().startswith('x-amz-') and name.lower() not in signed_set:
            raise Refused(403, 'AccessDenied', 'header %s is not signed' % name.lower())
    if token is not None:
        if sent_token != token:
            raise Refused(403, 'InvalidToken', 'missing or wrong x-amz-security-token')
        if time.time() > expiry:
            raise Refused(400, 'ExpiredToken', 'The provided token has expired.')
    elif sent_token is not None:
        raise Refused(403, 'InvalidToken', 'a session token with long-term keys')
    amz_date = headers.get('x-amz-date', '')
    try:
        t = time.mktime(time.strptime(amz_date, '%Y%m%dT%H%M%SZ')) - time.timezone
    except ValueError:
        raise Refused(403, 'AccessDenied', 'bad x-amz-date %r' % amz_date)
    if abs(t - time.time()) > 900 or amz_date[:8] != day:
        raise Refused(403, 'RequestTimeTooSkewed', 'x-amz-date %s' % amz_date)
    declared = headers.get('x-amz-content-sha256')
    if declared not in ('UNSIGNED-PAYLOAD',) and declared != hashlib.sha256(body).hexdigest():
        raise Refused(400, 'XAmzContentSHA256Mismatch',
                      'x-amz-content-sha256 %s is not the hash of the body' % declared)
    # Canonical form from the decoded path and query, byte for byte (a key
    # need not be valid UTF-8), encoded the way botocore encodes them;
    # botocore then sorts the query and signs.
    split = urlsplit(raw_path)
    path = quote(unquote_to_bytes(split.path), safe=b'/~')
    pairs = []
    for item in split.query.split('&') if split.query else []:
        k, _, v = item.partition('=')
        pairs.append('%s=%s' % (canon_part(k), canon_part(v)))
    url = 'http://%s%s' % (headers.get('Host', ''), path)
    if pairs:
        url += '?' + '&'.join(pairs)
    req = AWSRequest(method=method, url=url, data=body)
    for name in signed_set:
        values = headers.get_all(name) or []
        if not values:
            raise Refused(403, 'AccessDenied', 'signed header %s is missing' % name)
        req.headers[name] = ','.join(v.strip() for v in values)
    req.context['timestamp'] = amz_date
    signer = S3SigV4Auth(Credentials(key_id, secret, token), 's3', region)
    canonical = signer.canonical_request(req)
    want = signer.signature(signer.string_to_sign(req, canonical), req)
    if not hmac.compare_digest(want, signature):
        raise Refused(403, 'SignatureDoesNotMatch',
                      'The request signature we calculated does not match the signature you '
                      'provided. Canonical request: %r' % canonical)
    return key_id, sent_token is not None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def note(self, line):
        with LOG_LOCK, open(ARGS.log, 'a') as f:
            f.write(line + '\n')

    def upstream(self):
        c = getattr(self, 'conn', None)
        if c is None:
            host, _, port = ARGS.upstream.rpartition(':')
            c = self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        return c

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP and k.lower() != 'content-length':
                self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)) if self.command != 'HEAD'
                         else headers_len(headers, len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        try:
            key_id, has_token = verify(self.command, self.path, self.headers, body)
        except Refused as e:
            self.note('refused %s %s %s' % (e.code, self.command, self.path))
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s'
                   '</Message></Error>' % (e.code, escape(e.message))).encode()
            self.reply(e.status, [('Content-Type', 'application/xml')], xml)
            return
        self.note('ok 200 %s %s key=%s token=%s conn=%d' % (
            self.command, self.path, key_id, 'yes' if has_token else 'no',
            self.client_address[1]))
        fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        # s3rver checks no signature but knows one key id: temporary
        # credentials (already verified here) go on under that id.
        if ARGS.upstream_key and key_id != ARGS.upstream_key:
            fwd['Authorization'] = fwd['Authorization'].replace(
                'Credential=%s/' % key_id, 'Credential=%s/' % ARGS.upstream_key, 1)
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
            try:
                c = self.upstream()
                c.request(self.command, self.path, body=body, headers=fwd)
                r = c.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    self.reply(502, [('Content-Type', 'text/plain')], b'upstream unreachable')
                    self.close_connection = True
                    return
        self.reply(r.status, r.getheaders(), data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any


def canon_part(s):
    return quote(unquote_to_bytes(s.replace('+', ' ')), safe=b'-_.~')


def headers_len(headers, n):
    for k, v in headers:
        if k.lower() == 'content-length':
            return v
    return str(n)


def escape(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--upstream', required=True)
    p.add_argument('--keys', required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--region', default='us-east-1')
    p.add_argument('--upstream-key', help='key id the upstream knows (forwarded requests)')
    p.add_argument('--cert')
    p.add_argument('--key')
    ARGS = p.parse_args()
    serve(Handler, ARGS.port, ARGS.cert, ARGS.key)


def serve(handler, port, cert=None, key=None):
    """Serves handler on 127.0.0.1:port (0: any), over TLS with cert;
    prints "listening on PORT" (the harness waits for it)."""
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)
    srv.daemon_threads = True
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print('listening on %d' % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    sys.exit(main())
