#!/usr/bin/env bash
# Rebuilds the self-hosted GraphiQL bundle from npm (run by hand when upgrading; the output is
# committed so the server needs no network and no Node at build or run time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent graphiql@3.9.0 react@18.3.1 react-dom@18.3.1 graphql-ws@5.16.0 >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}" --strip-components=1; done
cp graphiql-3.9.0/graphiql.min.js graphiql-3.9.0/graphiql.min.css "$here/"
cp react-18.3.1/umd/react.production.min.js "$here/"
cp react-dom-18.3.1/umd/react-dom.production.min.js "$here/"
cp graphql-ws-5.16.0/umd/graphql-ws.min.js "$here/"
sed -i "s,//# sourceMappingURL=.*\$,," "$here/graphiql.min.js"
echo "GraphiQL assets updated in $here"
