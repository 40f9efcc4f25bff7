package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"supportbot/bitrix24/b24test"
	"supportbot/storage"
)

// BenchmarkEventIntake measures the event route without the network: decode, verify,
// store and commit one group-chat message in an existing dialog.
func BenchmarkEventIntake(b *testing.B) {
	srv, store := newServerTB(b)
	var p storage.Portal
	store.Update(context.Background(), func(tx *storage.Tx) error {
		p, _ = tx.EnsurePortal("test", "")
		for i := 0; i < 50; i++ {
			d, err := tx.CreateDialog(storage.NewDialog{PortalID: p.ID, ClientID: 27, Language: "en", Title: func(int) string { return "t" }})
			if err != nil {
				return err
			}
			if err := tx.SetDialogChat(d.ID, int64(1001+i)); err != nil {
				return err
			}
		}
		return nil
	})
	tmpl := string(b24test.Event("v1/onimbotmessageadd-group.form", map[string]string{
		"data[PARAMS][MESSAGE_ID]": "XMSGX", "data[PARAMS][CHAT_ID]": "XCHATX", "data[PARAMS][DIALOG_ID]": "chatXCHATX",
		"data[PARAMS][CHAT_TITLE]": "t", "auth[application_token]": token,
	}))
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // 32 concurrent requests on two cores, as in bench/intake
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			body := strings.NewReplacer("XMSGX", strconv.FormatInt(n, 10), "XCHATX", strconv.FormatInt(1001+n%50, 10)).Replace(tmpl)
			req := httptest.NewRequest(http.MethodPost, "/bitrix/events", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
