package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/storage/storagetest"
)

// Several replicas of the bot on one PostgreSQL database: these tests need a server
// (storagetest.PostgresEnv); CI starts one.

// TestReplicasKeepTheLimit: three replicas, and 50 "open new" from one client at
// once, spread over them, give exactly the limit of dialogs, numbered 1 to 5.
func TestReplicasKeepTheLimit(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	path := storagetest.OnPostgres(t, filepath.Join(t.TempDir(), "replicas.db")) // one database for the three
	db := "SUPPORTBOT_DB_URL=" + path
	replicas := []*runningBot{startBot(t, portal, path, db), startBot(t, portal, path, db), startBot(t, portal, path, db)}
	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		wg.Go(func() { statuses[i] = replicas[i%3].post(privateMessage(client, "ru", "открыть новый")) })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("event %d answered %d", i, s)
		}
	}
	var numbers []int
	for _, d := range dialogsAt(t, path) {
		numbers = append(numbers, d.Number)
	}
	slices.Sort(numbers)
	if !slices.Equal(numbers, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("dialogs numbered %v", numbers)
	}
	portal.WaitCalls(t, "imbot.chat.add", 5, 10*time.Second)
	waitIdle(t, path)
	if n := len(portal.CallsTo("imbot.chat.add")); n != 5 {
		t.Fatalf("%d chats created for 5 dialogs", n)
	}
}

// TestReplicasSurviveAKill: load through three replicas on one database, the one
// sending to the portal killed with SIGKILL mid-run: every acknowledged event is
// processed once, every reply delivered, in order per chat (a repeat only where it
// was counted as may-have-run), and the portal never sees its limit exceeded.
func TestReplicasSurviveAKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	portal := b24test.New(t)
	portal.SetRateLimit(20, 40)
	base := t.TempDir()
	dbPath := storagetest.OnPostgres(t, filepath.Join(base, "shared.db"))
	clients := clientIDs(12)
	env := []string{
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_DB_URL=" + dbPath,
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + portal.WebhookURL(),
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + testToken,
		"SUPPORTBOT_BITRIX_RATE_PER_SECOND=20",
		"SUPPORTBOT_BITRIX_BURST=40",
		adminsEnv(clients),
		"SUPPORTBOT_SUPPORT_AGENTS=50", // no agents, no dialog
	}
	var replicas []*process
	for i := range 3 {
		dir := filepath.Join(base, strconv.Itoa(i))
		replicas = append(replicas, startBinary(t, mkdir(t, dir), env))
	}
	post := func(i int, body []byte) (int, error) {
		status, _, err := b24test.Post(context.Background(), replicas[i%3].url()+"/bitrix/events", body)
		return status, err
	}
	numbers := openOneEach(t, func(body []byte) {
		if s, err := post(0, body); err != nil || s != http.StatusOK {
			t.Fatalf("set-up event: %d %v", s, err)
		}
	}, dbPath, clients)

	// Who sends to the portal: the replica that made REST calls.
	sender := slices.IndexFunc(replicas, func(p *process) bool { return metricValue(t, p.url(), "supportbot_rest_calls_total") > 0 })
	if sender < 0 {
		t.Fatal("no replica sends")
	}
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: 40 * time.Millisecond})
	var mu sync.Mutex
	acked := map[int64][]int{}
	var wg sync.WaitGroup
	for ci, c := range clients {
		wg.Go(func() {
			for k := range 20 {
				// Spread over the replicas that live; the sender dies at the client's 8th.
				target := (ci + k) % 3
				if k >= 8 && target == sender {
					target = (target + 1) % 3
				}
				status, err := post(target, privateMessage(c, "en", fmt.Sprintf("rename %d r-%d-%d", numbers[c], c, k)))
				if err == nil && status == http.StatusOK {
					mu.Lock()
					acked[c] = append(acked[c], k)
					mu.Unlock()
				}
				if ci == 0 && k == 8 {
					replicas[sender].cmd.Process.Signal(syscall.SIGKILL)
				}
			}
		})
	}
	wg.Wait()
	<-replicas[sender].done
	portal.InjectFaults(b24test.FaultPlan{})
	waitIdleWithin(t, 60*time.Second, dbPath)

	total := 0
	for _, ks := range acked {
		total += len(ks)
	}
	if recorded := processedEvents(t, dbPath); recorded < total+len(clients) {
		t.Fatalf("%d events recorded, %d acknowledged", recorded, total+len(clients))
	}
	duplicates := 0
	for i, p := range replicas {
		if i != sender {
			duplicates += int(metricValue(t, p.url(), "supportbot_outbox_maybe_duplicates_total"))
		}
	}
	checkReplies(t, portal, acked, duplicates)
	if n := portal.LimitRejections(); n != 0 {
		t.Errorf("the portal refused %d requests over its limit", n)
	}
	for i, p := range replicas {
		if i != sender {
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
		}
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
