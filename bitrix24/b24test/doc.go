// Package b24test is a fake Bitrix24 portal for tests: a real HTTP server (httptest)
// that answers the REST methods a chat bot uses the way Bitrix24 does, keeps what they
// create, records every call (Calls, WaitCalls), and sends the bot events built from
// the recorded fixtures in bitrix24/testdata. Package botv2 adds imbot.v2.
//
// Error codes and answer shapes follow the Bitrix24 REST documentation
// (github.com/bitrix24/b24restdocs) and, where it is silent, the im and rest modules.
//
//   - portal.go: the Portal, its routing, authentication and recorded calls, and the
//     answer envelope ({"result":…,"time":{…}}, errors), Handle and AddMethod;
//   - methods.go: the built-in methods (Builtin), chats and messages (Chat, Messages);
//   - batch.go: the batch method;
//   - bots.go: imbot.register and the command methods, event.bind (Bots, Commands);
//   - limits.go: the leaky bucket (SetRateLimit), injected faults (InjectFaults) and
//     OPERATION_TIME_LIMIT (BlockMethod);
//   - oauth.go: tokens and scopes, and the application's OAuth server (NewOAuth,
//     NewAppPortal), which renews tokens;
//   - placements.go: placement.bind and placement.unbind (Placements), user.current,
//     the portal's own pages (HandlePage) and the POST that opens a placement
//     (PlacementOpen);
//   - events.go: event bodies from fixtures (Event, AppEvent, InstallEvent) and Post.
package b24test
