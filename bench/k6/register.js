// The seed's registration burst: fresh wallets and keys, a share replayed.
// k6 run bench/k6/register.js   (env: BASE_URL, VUS=1000, DURATION=30s, REPLAY=0.1, XFF=1)
import { check } from 'k6';
import { options as opts, post, wallet } from './lib.js';

export const options = opts(1000);

export default function () {
  const w = wallet();
  const res = post('/api/register', JSON.stringify({ wallet: w }),
    ['registrationId', 'wallet', 'settlementId', 'status', 'createdAt'], true);
  if (res) check(res, { 'register echoes wallet': (r) => r.json('wallet') === w });
}
