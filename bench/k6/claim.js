// The seed's claim flow: prepare a claim for a fresh wallet (claim-wallet allows 60
// per hour per wallet), then record a transaction for it.
// k6 run bench/k6/claim.js   (env: BASE_URL, VUS=500, DURATION=30s, REPLAY=0.1)
import { check } from 'k6';
import { hex, options as opts, post, wallet } from './lib.js';

export const options = opts(500);

export default function () {
  const w = wallet();
  const prep = post('/api/claim/prepare', JSON.stringify({ wallet: w, amount: '1000' }),
    ['claimId', 'wallet', 'amount', 'nonce', 'expiresAt', 'signature'], true);
  if (!prep) return;
  check(prep, { 'prepare echoes wallet and amount': (r) => r.json('wallet') === w && r.json('amount') === '1000' });
  const claimId = prep.json('claimId');
  const txHash = '0x' + hex(32);
  const rec = post('/api/claim/record', JSON.stringify({ wallet: w, claimId, txHash }),
    ['claimId', 'wallet', 'txHash', 'settlementId', 'status'], false);
  if (rec) check(rec, { 'record echoes claim and tx': (r) => r.json('claimId') === claimId && r.json('txHash') === txHash });
}
