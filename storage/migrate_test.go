package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"supportbot/bitrix24"
)

// TestUpgradeKeepsPendingCalls: a database written by a version whose outbox held v1
// calls (method and parameters) still delivers every pending entry after the upgrade
// to actions: each converts to the action the bot now writes, and renders as the very
// call the old version would have made.
func TestUpgradeKeepsPendingCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), old, 5); err != nil {
		t.Fatal(err)
	}
	const oldChat = "\x00CHAT_ID\x00" // the awaited chat's ID, as every version wrote it
	const awaitedChat = "chat" + oldChat
	kb := &bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: "Go to chat", Action: "DIALOG", ActionValue: awaitedChat,
		Display: "LINE", BgColor: "#29619b", TextColor: "#fff"}, bitrix24.NewLine()}}
	profile := bitrix24.BotProfile{Code: "supportbot", Name: "Поддержка", Color: "AQUA", HandlerURL: "https://s.example/bitrix/events"}
	oldProfile := profile // an old version's bot had its work position fixed; it is kept
	oldProfile.WorkPosition = "Support / Поддержка"
	command := bitrix24.CommandSpec{Name: "new", Titles: []bitrix24.CommandTitle{
		{Language: "ru", Title: "Открыть новое \"обращение\"", Params: "вопрос"}, {Language: "en", Title: "Open a new question", Params: "question"}}}
	hidden := bitrix24.CommandSpec{Name: "rate", Hidden: true, Titles: []bitrix24.CommandTitle{{Language: "ru", Title: "Оценить"}}}
	// What the old version wrote (its bot's parameter maps, its placeholders), and
	// what it now means.
	const oldBot = "\x00BOT_ID\x00"
	cases := []struct {
		method string
		params map[string]any
		want   bitrix24.Action
		botID  int64
	}{
		{"imbot.message.add", map[string]any{"BOT_ID": 7, "DIALOG_ID": awaitedChat, "MESSAGE": "Hello [chat=" + oldChat + "]x[/chat]", "KEYBOARD": kb},
			bitrix24.SendMessage{To: awaitedChat, Text: "Hello [chat=" + oldChat + "]x[/chat]", Keyboard: kb}, 7},
		{"imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "plain"},
			bitrix24.SendMessage{To: "27", Text: "plain"}, 0},
		{"imbot.message.update", map[string]any{"BOT_ID": 7, "MESSAGE_ID": 901, "MESSAGE": "answered", "KEYBOARD": "N"},
			bitrix24.UpdateMessage{MessageID: 901, Text: "answered", DropKeyboard: true}, 7},
		{"imbot.chat.add", map[string]any{"BOT_ID": 7, "TYPE": "CHAT", "TITLE": "Вопрос — №3", "USERS": []int64{27, 50},
			"ENTITY_TYPE": "SUPPORTBOT_QUESTION", "ENTITY_ID": "question|3"},
			bitrix24.CreateChat{Title: "Вопрос — №3", Users: []int64{27, 50}, EntityType: "SUPPORTBOT_QUESTION", EntityID: "question|3"}, 7},
		{"imbot.chat.updateTitle", map[string]any{"BOT_ID": 7, "CHAT_ID": oldChat, "TITLE": "Billing"},
			bitrix24.RenameChat{Chat: awaitedChat, Title: "Billing"}, 7},
		{"imbot.register", map[string]any{"CODE": profile.Code, "TYPE": "S", "EVENT_HANDLER": profile.HandlerURL,
			"EVENT_MESSAGE_ADD": profile.HandlerURL, "EVENT_WELCOME_MESSAGE": profile.HandlerURL, "EVENT_BOT_DELETE": profile.HandlerURL,
			"EVENT_MESSAGE_UPDATE": profile.HandlerURL, "EVENT_MESSAGE_DELETE": profile.HandlerURL, "OPENLINE": "N",
			"PROPERTIES": map[string]any{"NAME": profile.Name, "COLOR": profile.Color, "WORK_POSITION": "Support / Поддержка"}},
			bitrix24.RegisterBot{Profile: oldProfile}, 0},
		{"imbot.command.register", map[string]any{"BOT_ID": oldBot, "COMMAND": "new", "COMMON": "N", "HIDDEN": "N", "EXTRANET_SUPPORT": "N",
			"EVENT_COMMAND_ADD": profile.HandlerURL, "LANG": []map[string]any{
				{"LANGUAGE_ID": "ru", "TITLE": "Открыть новое \"обращение\"", "PARAMS": "вопрос"},
				{"LANGUAGE_ID": "en", "TITLE": "Open a new question", "PARAMS": "question"}}},
			bitrix24.RegisterCommand{Command: command, HandlerURL: profile.HandlerURL}, 7},
		{"imbot.command.register", map[string]any{"BOT_ID": oldBot, "COMMAND": "rate", "COMMON": "N", "HIDDEN": "Y", "EXTRANET_SUPPORT": "N",
			"EVENT_COMMAND_ADD": profile.HandlerURL, "LANG": []map[string]any{{"LANGUAGE_ID": "ru", "TITLE": "Оценить", "PARAMS": ""}}},
			bitrix24.RegisterCommand{Command: hidden, HandlerURL: profile.HandlerURL}, 7},
		{"event.bind", map[string]any{"event": "ONAPPUNINSTALL", "handler": profile.HandlerURL},
			bitrix24.BindEvent{Event: "ONAPPUNINSTALL", Handler: profile.HandlerURL}, 0},
	}
	if _, err := old.Exec(`INSERT INTO portals (id, member_id, created_at, updated_at) VALUES (1, 'webhook', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		params, _ := json.Marshal(c.params)
		if _, err := old.Exec(`INSERT INTO outbox (portal_id, chat_key, method, params, next_attempt_at, created_at) VALUES (1, ?, ?, ?, 0, 0)`,
			"lane", c.method, string(params)); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	old.Close()

	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entries, err := s.Outbox(context.Background(), 1)
	if err != nil || len(entries) != len(cases) {
		t.Fatalf("%d entries after the upgrade (%v), want %d", len(entries), err, len(cases))
	}
	for i, c := range cases {
		e := entries[i]
		got, err := bitrix24.DecodeAction(e.Kind, e.Action)
		if err != nil {
			t.Errorf("%s: %v (%s %s)", c.method, err, e.Kind, e.Action)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s converted to\n%#v\nwant\n%#v", c.method, got, c.want)
		}
		// Rendered with the chat and the bot known, it is the old call.
		filled := got
		if w, ok := got.(bitrix24.ChatAwaiter); ok {
			filled = w.WithChat(4001)
		}
		call, err := bitrix24.V1.Render(filled, bitrix24.Context{BotID: c.botID})
		if err != nil {
			t.Errorf("%s: render: %v", c.method, err)
			continue
		}
		want := replaceAll(c.params, map[string]any{oldBot: c.botID, oldChat: int64(4001)})
		if !sameJSON(t, call.Params, want) || call.Method != c.method {
			gotJSON, _ := json.Marshal(call.Params)
			wantJSON, _ := json.Marshal(want)
			t.Errorf("%s renders as %s %s\nwant %s", c.method, call.Method, gotJSON, wantJSON)
		}
	}
}

// replaceAll puts the old placeholders' values in: a whole value that is a
// placeholder becomes the number; inside strings the number's digits.
func replaceAll(params map[string]any, values map[string]any) map[string]any {
	raw, _ := json.Marshal(params)
	var v any
	_ = json.Unmarshal(raw, &v)
	var walk func(any) any
	walk = func(x any) any {
		switch y := x.(type) {
		case map[string]any:
			for k, e := range y {
				y[k] = walk(e)
			}
		case []any:
			for i, e := range y {
				y[i] = walk(e)
			}
		case string:
			if n, ok := values[y]; ok {
				return n
			}
			for ph, n := range values {
				b, _ := json.Marshal(n)
				y = strings.ReplaceAll(y, ph, string(b))
			}
			return y
		}
		return x
	}
	return walk(v).(map[string]any)
}

// sameJSON compares two values by their JSON, numbers as numbers.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// oldPostgresRows fill every table of PostgreSQL's first migration, in the columns it
// had; each later migration must keep them.
var oldPostgresRows = []string{
	`INSERT INTO portals (member_id, domain, bot_id, created_at, updated_at, client_id, client_endpoint, application_token,
		access_token, refresh_token, token_expires_at, installed_at, api, bot_token, event_mode, fetch_offset, installed_by, roles_seeded)
		VALUES ('old', 'old.bitrix24.ru', 7, 1000, 1100, 'app.1', 'https://old.bitrix24.ru/rest/', 'apptoken',
		'access', 'refresh', 99000, 1000, 'v2', 'bottoken', 'fetch', 42, 1, TRUE)`,
	`INSERT INTO dialogs (portal_id, number, client_id, chat_id, title, title_pending, escalated_at, language, created_at, updated_at,
		last_activity_at, client_name, escalated_by)
		SELECT id, 1, 27, 4001, 'Вопрос №1', 1, 1300, 'ru', 1000, 2000, 2000, 'Анна', 50 FROM portals`,
	`INSERT INTO messages (dialog_id, bitrix_message_id, author_id, author_role, text, created_at, edited_at)
		SELECT id, 901, 27, 'client', 'Не работает', 1500, 1600 FROM dialogs`,
	`INSERT INTO last_seen (dialog_id, user_id, message_seq, seen_at) SELECT dialog_id, 27, id, 1600 FROM messages`,
	`INSERT INTO processed_events (portal_id, event_key, event_type, received_at) SELECT id, 'message|901', 'ONIMBOTMESSAGEADD', 1500 FROM portals`,
	`INSERT INTO outbox (portal_id, lane, kind, action, awaits_dialog, next_attempt_at, created_at, maybe_sent, batch_limit)
		SELECT portal_id, 'dialog:' || id, 'send_message', '{"dialog_id":"chat4001","text":"Здравствуйте"}', id, 1500, 1500, TRUE, 5 FROM dialogs`,
	`INSERT INTO access_requests (dialog_id, client_id, requested_by, message_id, requested_at) SELECT id, 27, 50, 903, 1700 FROM dialogs`,
	`INSERT INTO ratings (dialog_id, resolved_at, user_id, helped, rated_at) SELECT id, 1800, 27, TRUE, 1900 FROM dialogs`,
	`INSERT INTO bot_commands (portal_id, command, command_id) SELECT id, 'new', 11 FROM portals`,
	`INSERT INTO stray_messages (portal_id, chat_id, dialog_id, bitrix_message_id, author_id, text, created_at)
		SELECT portal_id, 4002, id, 902, 27, 'в чужом чате', 1550 FROM dialogs`,
	`INSERT INTO health (id, checked_at) VALUES (1, 1000)`,
	`INSERT INTO dialog_events (portal_id, dialog_id, kind, actor_id, at) SELECT portal_id, id, 'opened', 27, 1000 FROM dialogs`,
	`INSERT INTO roles (portal_id, role, user_id, added_by, added_at) SELECT id, 'agent', 50, 1, 1000 FROM portals`,
}

// TestPostgresUpgradeKeepsData: a PostgreSQL database built by the first N
// migrations, with rows in every table the first one made, is upgraded by Open for
// every N; each row keeps every value it had, the store reads them, and writes new
// rows beside them (the ids go on from the old ones).
func TestPostgresUpgradeKeepsData(t *testing.T) {
	base := needPostgres(t)
	names, err := fs.Glob(pgMigrationFiles, "migrations/postgres/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(names); n++ {
		t.Run(fmt.Sprintf("from %d of %d", n, len(names)), func(t *testing.T) {
			ctx := t.Context()
			url := testSchema(t, base)
			old, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := migratePostgres(ctx, old, n); err != nil {
				t.Fatal(err)
			}
			for _, q := range oldPostgresRows {
				if _, err := old.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			before := postgresRows(t, old)
			filled := 0
			for _, rows := range before {
				if len(rows) > 0 {
					filled++
				}
			}
			if filled != len(oldPostgresRows) {
				t.Fatalf("rows in %d tables of the old database, want %d", filled, len(oldPostgresRows))
			}
			old.Close()

			s, err := Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			after := postgresRows(t, s.write)
			for table, rows := range before {
				if len(rows) == 0 {
					continue
				}
				var columns map[string]any
				if err := json.Unmarshal([]byte(rows[0]), &columns); err != nil {
					t.Fatal(err)
				}
				was, kept := inColumns(t, rows, nil), inColumns(t, after[table], columns)
				if !slices.Equal(was, kept) {
					t.Errorf("%s: before the upgrade\n%s\nafter it\n%s", table, strings.Join(was, "\n"), strings.Join(kept, "\n"))
				}
			}

			p, err := s.PortalByMemberID(ctx, "old")
			if err != nil || p.BotID != 7 || p.FetchOffset != 42 || p.BotToken != "bottoken" {
				t.Fatalf("portal after the upgrade: %+v, %v", p, err)
			}
			var d, fresh Dialog
			var transcript []Message
			err = s.Update(ctx, func(tx *Tx) error {
				var err error
				if d, err = tx.DialogByNumber(p.ID, 1); err != nil {
					return err
				}
				if transcript, err = tx.Transcript(d.ID); err != nil {
					return err
				}
				fresh, err = tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "ru", Title: func(n int) string { return fmt.Sprint("№", n) }})
				if err != nil {
					return err
				}
				if _, _, err := tx.AddMessage(Message{DialogID: fresh.ID, BitrixMessageID: 904, AuthorID: 27, AuthorRole: RoleClient, Text: "ещё"}); err != nil {
					return err
				}
				_, err = tx.Enqueue(OutboxRow{PortalID: p.ID, Lane: "27", Kind: "send_message", Action: json.RawMessage(`{"dialog_id":"27","text":"x"}`)})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if d.ChatID != 4001 || d.Title != "Вопрос №1" || d.ClientName != "Анна" || !d.TitlePending || d.EscalatedBy != 50 {
				t.Errorf("dialog after the upgrade: %+v", d)
			}
			if len(transcript) != 1 || transcript[0].Text != "Не работает" || transcript[0].BitrixMessageID != 901 {
				t.Errorf("transcript after the upgrade: %+v", transcript)
			}
			if fresh.Number != 2 || fresh.ID == d.ID {
				t.Errorf("a dialog created after the upgrade: №%d, id %d (the old one's %d)", fresh.Number, fresh.ID, d.ID)
			}
			entries, err := s.Outbox(ctx, p.ID)
			if err != nil || len(entries) != 2 || entries[0].AwaitsDialog != d.ID || !entries[0].MaybeSent || entries[0].BatchLimit != 5 {
				t.Fatalf("outbox after the upgrade: %+v, %v", entries, err)
			}
		})
	}
}

// postgresRows is every row of every table of the schema (but schema_version), as
// JSON objects keyed by column.
func postgresRows(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	tables, err := rowsOf(t.Context(), db, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'schema_version'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, table := range tables {
		// The name comes from the catalogue; quote_ident would only matter for
		// names the migrations never use.
		rows, err := rowsOf(t.Context(), db, `SELECT to_jsonb(t)::text FROM `+table[0]+` t`)
		if err != nil {
			t.Fatal(err)
		}
		out[table[0]] = []string{}
		for _, r := range rows {
			out[table[0]] = append(out[table[0]], r[0])
		}
	}
	return out
}

// inColumns writes each row (a JSON object) with only the given columns (all when
// columns is nil), as encoding/json does, sorted: rows compare by their values.
func inColumns(t *testing.T, rows []string, columns map[string]any) []string {
	t.Helper()
	out := []string{}
	for _, row := range rows {
		var values map[string]any
		if err := json.Unmarshal([]byte(row), &values); err != nil {
			t.Fatal(err)
		}
		for c := range values {
			if _, ok := columns[c]; columns != nil && !ok {
				delete(values, c)
			}
		}
		raw, _ := json.Marshal(values)
		out = append(out, string(raw))
	}
	slices.Sort(out)
	return out
}

// TestLanesUpgrade: migration 0024 gives the lanes queued before it the names package
// outbox writes now ("client:27", "chat:5"), on both engines, so that entries queued
// before and after an upgrade share their lane and keep their order.
func TestLanesUpgrade(t *testing.T) {
	// The schema 0024 upgrades: the migrations before it, however many there are.
	beforeLanes := func(files fs.FS, pattern string) int {
		names, _ := fs.Glob(files, pattern)
		sort.Strings(names)
		return slices.IndexFunc(names, func(n string) bool { return strings.HasSuffix(n, "/0024_lanes.sql") })
	}
	lanes := map[string]string{"27": "client:27", "chat5": "chat:5", "dialog:3": "dialog:3", "setup": "setup"}
	check := func(t *testing.T, s *Store) {
		t.Helper()
		p, err := s.PortalByMemberID(t.Context(), "old")
		if err != nil {
			t.Fatal(err)
		}
		entries, err := s.Outbox(t.Context(), p.ID)
		if err != nil || len(entries) != len(lanes) {
			t.Fatalf("%d entries after the upgrade (%v)", len(entries), err)
		}
		for _, e := range entries {
			var was string
			if err := json.Unmarshal(e.Action, &was); err != nil || lanes[was] != e.Lane {
				t.Errorf("lane %q became %q", was, e.Lane)
			}
		}
	}
	insert := func(t *testing.T, db *sql.DB, bind func(int) string) {
		t.Helper()
		if _, err := db.Exec(`INSERT INTO portals (member_id, created_at, updated_at) VALUES ('old', 0, 0)`); err != nil {
			t.Fatal(err)
		}
		for old := range lanes {
			action, _ := json.Marshal(old) // the action keeps what the lane was, for the check
			_, err := db.Exec(`INSERT INTO outbox (portal_id, lane, kind, action, next_attempt_at, created_at)
				SELECT id, `+bind(1)+`, 'send_message', `+bind(2)+`, 0, 0 FROM portals`, old, string(action))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		old, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if err := migrate(t.Context(), old, beforeLanes(migrationFiles, "migrations/*.sql")); err != nil {
			t.Fatal(err)
		}
		insert(t, old, func(int) string { return "?" })
		old.Close()
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		base := needPostgres(t)
		url := testSchema(t, base)
		old, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		if err := migratePostgres(t.Context(), old, beforeLanes(pgMigrationFiles, "migrations/postgres/*.sql")); err != nil {
			t.Fatal(err)
		}
		insert(t, old, func(n int) string { return fmt.Sprint("$", n) })
		old.Close()
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
}
