// Shared by register.js and claim.js: environment, generators and the checks
// every answer gets, mirroring cmd/sgeload.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
export const REPLAY = parseFloat(__ENV.REPLAY || '0.1');

// Load stays on this machine, like sgeload's -url check.
if (!/^http:\/\/(127(\.\d{1,3}){3}|\[::1\]|localhost)(:\d+)?(\/|$)/.test(BASE_URL + '/')) {
  throw new Error(`BASE_URL ${BASE_URL} is not loopback (127.0.0.0/8, [::1], localhost)`);
}

export function options(defaultVUs) {
  return {
    vus: parseInt(__ENV.VUS || String(defaultVUs), 10),
    duration: __ENV.DURATION || '30s',
    thresholds: {
      checks: ['rate==1.0'], // any contract violation fails the run
      http_req_failed: ['rate<0.01'],
    },
  };
}

// 429 is a legitimate answer of a rate-limited route (checked below), not a failed request.
http.setResponseCallback(http.expectedStatuses(201, 429));

export const rateLimited = new Counter('rate_limited');

export function hex(bytes) {
  let s = '';
  for (let i = 0; i < bytes; i++) s += ((Math.random() * 256) | 0).toString(16).padStart(2, '0');
  return s;
}

// Lowercase addresses need no EIP-55 checksum.
export const wallet = () => '0x' + hex(20);

export function params(key, name) {
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': key };
  // With XFF=1 and a server started with TRUSTED_PROXIES=127.0.0.1/32, each operation
  // comes from its own 10.x.y.z, so the 5-per-hour register-ip limit does not cap the run.
  if (__ENV.XFF === '1') headers['X-Forwarded-For'] = `10.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}`;
  return { headers, tags: { name } };
}

const field = (res, name) => {
  try {
    return res.json(name);
  } catch (e) {
    return undefined;
  }
};

// post sends body under key to route, checks a first send (201 MISS with fields, or a
// 429 with its headers when the route is limited), replays a share REPLAY of the
// successes and checks the replay is a byte-identical HIT. It returns the first
// answer when it was a 201.
export function post(route, body, fields, limited) {
  const key = hex(16);
  const p = params(key, route);
  const res = http.post(`${BASE_URL}${route}`, body, p);
  if (limited && res.status === 429) {
    rateLimited.add(1);
    check(res, {
      '429 has Retry-After': (r) => !!r.headers['Retry-After'],
      '429 has RateLimit-Policy': (r) => !!r.headers['Ratelimit-Policy'],
      '429 has RateLimit': (r) => !!r.headers['Ratelimit'],
    });
    return null;
  }
  const ok = check(res, {
    [`${route} 201`]: (r) => r.status === 201,
    [`${route} MISS`]: (r) => r.headers['X-Idempotency'] === 'MISS',
    [`${route} fields`]: (r) => fields.every((f) => typeof field(r, f) === 'string' && field(r, f) !== ''),
  });
  if (ok && Math.random() < REPLAY) {
    const again = http.post(`${BASE_URL}${route}`, body, p);
    check(again, {
      'replay HIT': (r) => r.headers['X-Idempotency'] === 'HIT' && r.headers['Idempotent-Replayed'] === 'true',
      'replay same status': (r) => r.status === res.status,
      'replay same body': (r) => r.body === res.body,
    });
  }
  return ok ? res : null;
}
