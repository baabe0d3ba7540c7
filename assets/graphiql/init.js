// Mounts GraphiQL against this server: HTTP for queries and mutations, graphql-transport-ws for
// subscriptions. Everything is served by the API binary itself; nothing is fetched from a CDN.
(function () {
  var http = window.location.origin + "/graphql";
  var ws = (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + "/graphql/ws";
  var fetcher = GraphiQL.createFetcher({
    url: http,
    wsClient: graphqlWs.createClient({
      url: ws,
      lazy: true,
      // GraphiQL's headers editor is not reachable here; a token saved with
      // localStorage.setItem("mg-token", "<accessToken>") is sent on connection_init.
      connectionParams: function () {
        var token = window.localStorage.getItem("mg-token");
        return token ? { Authorization: "Bearer " + token } : {};
      },
    }),
  });
  var defaultQuery = [
    "# Welcome to the Master Guide API.",
    "#",
    "# Sign in with the `login` mutation (demo logins are in the README), then put",
    '#   { "Authorization": "Bearer <accessToken>" }',
    "# into the Headers tab below.",
    "",
    "query Me {",
    "  me {",
    "    id",
    "    email",
    "    role",
    "    identities { identityType domain status }",
    "  }",
    "}",
    "",
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: true,
    })
  );
})();
