// The GraphQL-over-HTTP spec's own audit (graphql-http `auditServer`) against a running server.
//   node http-audit.mjs http://127.0.0.1:PORT/graphql
// Prints every audit that is not ok and a summary; exits 1 unless every audit passes.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node http-audit.mjs <graphql url>');
  process.exit(2);
}
const results = await auditServer({ url });
const failed = results.filter((result) => result.status !== 'ok');
for (const result of failed) {
  let body = '';
  try {
    body = result.response ? ` (HTTP ${result.response.status}: ${await result.response.text()})` : '';
  } catch {}
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}${body}`);
}
console.log(`graphql-http audit: ${results.length - failed.length} of ${results.length} pass`);
process.exit(failed.length === 0 ? 0 : 1);
