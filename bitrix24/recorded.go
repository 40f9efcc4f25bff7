package bitrix24

import "embed"

// recorded are the fixtures the fake portal (b24test) needs when it runs as the local
// portal of a binary built without its source tree: the installation event, the
// sidebar's opening and the imbot.v2 user object.
//
//go:embed testdata/app/onappinstall.form testdata/app/placement-im-sidebar.query testdata/app/placement-im-sidebar.form testdata/v2/fetch/event-get.json
var recorded embed.FS

// Recorded is the fixture testdata/<name> if it is built in, for b24test.Fixture.
func Recorded(name string) ([]byte, error) { return recorded.ReadFile("testdata/" + name) }
