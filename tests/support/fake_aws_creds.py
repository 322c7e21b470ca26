#!/usr/bin/python3
"""fake_aws_creds.py — the AWS endpoints that hand out temporary
credentials, in one small server on loopback, for tests of sluice's
credential chain. Every answer carries fresh short-lived credentials, which
it appends to the SigV4 verifier's keys file (so the verifier accepts them,
checks their session token and refuses them once expired).

  POST /            STS AssumeRoleWithWebIdentity (form body; checks
                    RoleArn and WebIdentityToken); XML answer
  GET  /container   container credentials (ECS, EKS Pod Identity); checks
                    the Authorization header; JSON answer
  PUT  /latest/api/token                           IMDSv2 session token
  GET  /latest/meta-data/iam/security-credentials/[ROLE]  (token required)

  fake_aws_creds.py --keys FILE --log FILE --lifetime S --role-arn ARN
                    --web-token T --container-token T [--port P]

The log gets "issued SOURCE KEY_ID" per credential handed out and "refused
WHY" per request refused. Prints "listening on PORT"."""
import argparse
import base64
import http.server
import secrets
import threading
import time
from urllib.parse import parse_qs

from sigv4_verify import serve

ARGS = None
LOCK = threading.Lock()
STATE = {'n': 0, 'imds_tokens': set()}
ROLE = 'sluice-test-role'


def issue(source):
    with LOCK:
        STATE['n'] += 1
        key = 'ASIATEST%08d' % STATE['n']
        secret = secrets.token_urlsafe(30)
        # Real tokens are long base64, with '+', '/' and '='.
        token = base64.b64encode(secrets.token_bytes(400)).decode()
        expiry = time.time() + ARGS.lifetime
        with open(ARGS.keys, 'a') as f:
            f.write('%s %s %s %.3f\n' % (key, secret, token, expiry))
        with open(ARGS.log, 'a') as f:
            f.write('issued %s %s\n' % (source, key))
    stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expiry))
    return key, secret, token, stamp


def note(line):
    with LOCK, open(ARGS.log, 'a') as f:
        f.write(line + '\n')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, ctype='application/json'):
        data = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, why):
        note('refused ' + why)
        self.answer(status, '{"message": "%s"}' % why)

    def do_POST(self):
        n = int(self.headers.get('Content-Length') or 0)
        form = parse_qs(self.rfile.read(n).decode())
        get = lambda k: (form.get(k) or [''])[0]
        if get('Action') != 'AssumeRoleWithWebIdentity':
            return self.refuse(400, 'unknown action')
        if get('RoleArn') != ARGS.role_arn or get('WebIdentityToken') != ARGS.web_token:
            note('refused sts role or token')
            return self.answer(403, '<ErrorResponse><Error><Code>AccessDenied</Code><Message>'
                               'bad role or token</Message></Error></ErrorResponse>',
                               'text/xml')
        key, secret, token, stamp = issue('sts')
        self.answer(200, '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/'
                    'doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials>'
                    '<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>'
                    '<SessionToken>%s</SessionToken><Expiration>%s</Expiration>'
                    '</Credentials></AssumeRoleWithWebIdentityResult>'
                    '</AssumeRoleWithWebIdentityResponse>' % (key, secret, token, stamp),
                    'text/xml')

    def creds_json(self, source):
        key, secret, token, stamp = issue(source)
        return ('{"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "%s", '
                '"SecretAccessKey": "%s", "Token": "%s", "Expiration": "%s"}'
                % (key, secret, token, stamp))

    def do_PUT(self):
        if self.path != '/latest/api/token':
            return self.refuse(404, 'no such path')
        if not self.headers.get('X-aws-ec2-metadata-token-ttl-seconds'):
            return self.refuse(400, 'imds token without ttl')
        tok = secrets.token_urlsafe(20)
        with LOCK:
            STATE['imds_tokens'].add(tok)
        self.answer(200, tok, 'text/plain')

    def do_GET(self):
        if self.path == '/container':
            if self.headers.get('Authorization') != ARGS.container_token:
                return self.refuse(401, 'container authorization')
            return self.answer(200, self.creds_json('container'))
        base = '/latest/meta-data/iam/security-credentials/'
        if self.path.startswith(base):
            if self.headers.get('X-aws-ec2-metadata-token') not in STATE['imds_tokens']:
                return self.refuse(401, 'imds without session token (IMDSv1)')
            if self.path == base:
                return self.answer(200, ROLE, 'text/plain')
            if self.path == base + ROLE:
                return self.answer(200, self.creds_json('imds'))
        self.refuse(404, 'no such path ' + self.path)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--keys', required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--lifetime', type=float, default=900)
    p.add_argument('--role-arn', default='arn:aws:iam::123456789012:role/sluice')
    p.add_argument('--web-token', required=True)
    p.add_argument('--container-token', required=True)
    ARGS = p.parse_args()
    serve(Handler, ARGS.port)


if __name__ == '__main__':
    main()
