package bitrix24

import (
	"bytes"
	"os"
	"testing"
)

// TestRecorded: the fixtures the local portal reads (its installation, the sidebar's
// opening, the imbot.v2 user) are built in, as recorded, for a binary away from its
// source tree.
func TestRecorded(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"app/onappinstall.form", "app/placement-im-sidebar.query", "app/placement-im-sidebar.form", "v2/fetch/event-get.json"} {
		built, err := Recorded(name)
		if err != nil {
			t.Errorf("%s is not built in: %v", name, err)
			continue
		}
		disk, err := os.ReadFile("testdata/" + name)
		if err != nil || !bytes.Equal(built, disk) || len(built) == 0 {
			t.Errorf("%s: built in %d bytes, on disk %d (%v)", name, len(built), len(disk), err)
		}
	}
	if _, err := Recorded("v1/onimbotmessageadd-private.form"); err == nil {
		t.Error("a fixture only tests need is built into the binary")
	}
}
