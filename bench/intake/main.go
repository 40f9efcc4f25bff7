// Command intake measures how fast supportbot takes events, against a yardstick.
//
// It runs, one after the other in the same invocation, an empty Echo server that only
// parses the form (bench/echoserver) and the real supportbot binary on a fresh SQLite
// file, and puts the same load on both: ONIMBOTMESSAGEADD bodies built from the
// fixture, for messages in existing dialogs (clients and agents writing), each with a
// new message ID, over a fixed number of keep-alive connections. It reports events/s,
// the ratio, p50/p99 latency and the bot's peak RSS.
//
//	go run ./bench/intake                 # 32 connections, 20 s each
//	go run ./bench/intake -conns 32 -duration 20s -dialogs 200
//
// With -postgres URL it then runs three replicas on that PostgreSQL server (a fresh
// schema) and spreads the same load over them, for the ratio to the one SQLite
// replica measured in the same run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"supportbot/bitrix24/b24test"
)

const token = "831c76b092f9f135d9b6b36c3a720757"

func main() {
	conns := flag.Int("conns", 32, "concurrent connections")
	duration := flag.Duration("duration", 20*time.Second, "load duration per target")
	dialogs := flag.Int("dialogs", 200, "dialogs to spread the messages over")
	profile := flag.String("perf", "", "record a perf profile of supportbot under load into this file")
	postgres := flag.String("postgres", "", "also run three replicas on this PostgreSQL server (postgres://…)")
	flag.Parse()
	if err := run(*conns, *duration, *dialogs, *profile, *postgres); err != nil {
		fmt.Fprintln(os.Stderr, "intake:", err)
		os.Exit(1)
	}
}

func run(conns int, duration time.Duration, dialogs int, profile, postgres string) error {
	dir, err := os.MkdirTemp("", "supportbot-intake")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	botBin, echoBin := filepath.Join(dir, "supportbot"), filepath.Join(dir, "echoserver")
	for bin, pkg := range map[string]string{botBin: ".", echoBin: "./bench/echoserver"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}

	// The yardstick.
	echo := exec.Command(echoBin)
	stdout, _ := echo.StdoutPipe()
	if err := echo.Start(); err != nil {
		return err
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return err
	}
	chats := make([]int64, dialogs)
	for i := range chats {
		chats[i] = int64(1001 + i)
	}
	fmt.Printf("load: %d connections, %s per target, %d dialogs\n", conns, duration, dialogs)
	cpu0 := cpuTime(echo.Process.Pid)
	base := load([]string{"http://" + strings.TrimSpace(addr) + "/bitrix/events"}, conns, duration, chats)
	base.cpu = (cpuTime(echo.Process.Pid) - cpu0) / time.Duration(max(base.n, 1))
	echo.Process.Kill()
	echo.Wait()

	// The bot, in dry-run (no portal needed) but with the token checked, on a fresh file.
	bot, url, err := startBot(botBin, dir)
	if err != nil {
		return err
	}
	defer func() { bot.Process.Kill(); bot.Wait() }()
	botChats, err := setUp(url, "sqlite", filepath.Join(dir, "supportbot.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)", dialogs)
	if err != nil {
		return err
	}
	if profile != "" {
		rec := exec.Command("perf", "record", "-F", "499", "-g", "-o", profile, "-p", strconv.Itoa(bot.Process.Pid),
			"--", "sleep", strconv.Itoa(int(duration.Seconds())))
		if err := rec.Start(); err != nil {
			return fmt.Errorf("perf: %w", err)
		}
		defer rec.Wait()
	}
	cpu0 = cpuTime(bot.Process.Pid)
	got := load([]string{url}, conns, duration, botChats)
	got.cpu = (cpuTime(bot.Process.Pid) - cpu0) / time.Duration(max(got.n, 1))
	rss := peakRSS(bot.Process.Pid)
	wal := "none"
	if fi, err := os.Stat(filepath.Join(dir, "supportbot.db-wal")); err == nil {
		wal = fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
	}

	bot.Process.Kill()
	bot.Wait()
	var replicas result
	if postgres != "" {
		if replicas, err = runReplicas(botBin, dir, postgres, conns, duration, dialogs); err != nil {
			return err
		}
	}

	fmt.Printf("\n| target | events/s | p50 | p99 | server CPU per event | errors |\n| --- | --- | --- | --- | --- | --- |\n")
	base.print("empty Echo handler (parse form)")
	got.print("supportbot (decode, verify, store, commit)")
	if postgres != "" {
		replicas.print("supportbot, three replicas on PostgreSQL")
	}
	fmt.Printf("\nratio: %.2f of the empty handler's rate; supportbot peak RSS: %s; WAL after the load: %s\n", got.rate/base.rate, rss, wal)
	if postgres != "" {
		fmt.Printf("three replicas on PostgreSQL: %.2f of the one SQLite replica's rate (the same machine runs the server and the load)\n",
			replicas.rate/got.rate)
	}
	return nil
}

// startBot starts one bot in dir, with env added, and returns it and its event URL.
func startBot(bin, dir string, env ...string) (*exec.Cmd, string, error) {
	var admins []string
	for i := 0; i < clients; i++ {
		admins = append(admins, strconv.Itoa(1000+i))
	}
	bot := exec.Command(bin)
	bot.Dir = dir
	bot.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_BITRIX_NO_PORTAL=dry-run", // the bot alone, not the local portal
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + token,
		"SUPPORTBOT_ACCESS_ADMINS=" + strings.Join(admins, ","),
		"SUPPORTBOT_SUPPORT_AGENTS=500,501",
		"SUPPORTBOT_DIALOGS_MAX_ACTIVE=100",
	}, env...)
	stderr, _ := bot.StderrPipe()
	if err := bot.Start(); err != nil {
		return nil, "", err
	}
	addr, err := waitListening(stderr)
	if err != nil {
		bot.Process.Kill()
		bot.Wait()
		return nil, "", err
	}
	return bot, "http://" + addr + "/bitrix/events", nil
}

// clients is how many clients the dialogs belong to.
const clients = 50

// runReplicas runs three replicas on a fresh schema of the PostgreSQL server, sets up
// the dialogs through one, and spreads the load over the three.
func runReplicas(bin, dir, server string, conns int, duration time.Duration, dialogs int) (result, error) {
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return result{}, err
	}
	defer admin.Close()
	schema := fmt.Sprintf("intake_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return result{}, fmt.Errorf("create schema: %w", err)
	}
	defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	u, err := neturl.Parse(server)
	if err != nil {
		return result{}, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	var urls []string
	var pids []int
	for i := range 3 {
		rdir := filepath.Join(dir, "replica"+strconv.Itoa(i))
		os.MkdirAll(rdir, 0o755)
		bot, url, err := startBot(bin, rdir, "SUPPORTBOT_DB_URL="+u.String())
		if err != nil {
			return result{}, err
		}
		defer func() { bot.Process.Kill(); bot.Wait() }()
		urls, pids = append(urls, url), append(pids, bot.Process.Pid)
	}
	chats, err := setUp(urls[0], "pgx", u.String(), dialogs)
	if err != nil {
		return result{}, err
	}
	var cpu0 time.Duration
	for _, pid := range pids {
		cpu0 += cpuTime(pid)
	}
	res := load(urls, conns, duration, chats)
	var cpu1 time.Duration
	for _, pid := range pids {
		cpu1 += cpuTime(pid)
	}
	res.cpu = (cpu1 - cpu0) / time.Duration(max(res.n, 1))
	return res, nil
}

// setUp opens the dialogs the load writes into and returns their chat IDs, read
// from the database (driver, dsn).
func setUp(url, driver, dsn string, dialogs int) ([]int64, error) {
	for i := 0; i < dialogs; i++ {
		client := int64(1000 + i%clients)
		body := b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{
			"data[PARAMS][MESSAGE]":      "Question " + strconv.Itoa(i),
			"data[PARAMS][MESSAGE_ID]":   strconv.Itoa(1 + i),
			"data[PARAMS][FROM_USER_ID]": strconv.FormatInt(client, 10),
			"data[PARAMS][DIALOG_ID]":    strconv.FormatInt(client, 10),
			"data[USER][ID]":             strconv.FormatInt(client, 10),
			"auth[application_token]":    token,
		})
		if status, resp, err := b24test.Post(context.Background(), url, body); err != nil || status != 200 {
			return nil, fmt.Errorf("set-up event: %d %s %v", status, resp, err)
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := db.Query("SELECT chat_id FROM dialogs WHERE chat_id IS NOT NULL")
		if err != nil {
			return nil, err
		}
		var chats []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			chats = append(chats, id)
		}
		rows.Close()
		if len(chats) == dialogs {
			return chats, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d dialogs got a chat", len(chats), dialogs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type result struct {
	cpu       time.Duration // server CPU time per request
	n, errors int
	rate      float64
	p50, p99  time.Duration
}

func (r result) print(name string) {
	fmt.Printf("| %s | %.0f | %s | %s | %s | %d |\n", name, r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
		r.cpu.Round(time.Microsecond), r.errors)
}

// load sends group-chat messages into the given chats from conns keep-alive
// connections for d, spread over urls (the replicas of one bot). It speaks HTTP/1.1 on raw connections with prebuilt requests:
// net/http's client cost more CPU than the servers under test, on the same cores.
func load(urls []string, conns int, d time.Duration, chats []int64) result {
	tmpl := string(b24test.Event("v1/onimbotmessageadd-group.form", map[string]string{
		"data[PARAMS][MESSAGE]":          "A message of the benchmark, long enough to look like a real one.",
		"data[PARAMS][MESSAGE_ORIGINAL]": "A message of the benchmark, long enough to look like a real one.",
		"data[PARAMS][MESSAGE_ID]":       "XMSGX",
		"data[PARAMS][FROM_USER_ID]":     "XUSERX",
		"data[PARAMS][AUTHOR_ID]":        "XUSERX",
		"data[USER][ID]":                 "XUSERX",
		"data[PARAMS][DIALOG_ID]":        "chatXCHATX",
		"data[PARAMS][CHAT_ID]":          "XCHATX",
		"data[PARAMS][TO_CHAT_ID]":       "XCHATX",
		"data[PARAMS][CHAT_TITLE]":       "Support question — #1",
		"data[PARAMS][CHAT_ENTITY_TYPE]": "SUPPORTBOT_QUESTION",
		"auth[application_token]":        token,
	}))
	_, path, _ := strings.Cut(strings.TrimPrefix(urls[0], "http://"), "/")
	path = "/" + path
	var nextID atomic.Int64
	nextID.Store(time.Now().UnixNano() / 1000 % 1_000_000_000)
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Go(func() {
			host, _, _ := strings.Cut(strings.TrimPrefix(urls[w%len(urls)], "http://"), "/")
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			lat := make([]time.Duration, 0, 1<<16)
			bad := 0
			var conn net.Conn
			var rd *bufio.Reader
			req := make([]byte, 0, len(tmpl)+512)
			for time.Now().Before(stop) {
				if conn == nil {
					c, err := net.Dial("tcp", host)
					if err != nil {
						bad++
						time.Sleep(10 * time.Millisecond)
						continue
					}
					conn, rd = c, bufio.NewReader(c)
				}
				user := "500" // an agent writes…
				if rng.IntN(2) == 0 {
					user = strconv.Itoa(1000 + rng.IntN(50)) // …or a client (not always the dialog's own)
				}
				body := strings.NewReplacer(
					"XMSGX", strconv.FormatInt(nextID.Add(1), 10),
					"XUSERX", user,
					"XCHATX", strconv.FormatInt(chats[rng.IntN(len(chats))], 10),
				).Replace(tmpl)
				req = append(req[:0], "POST "+path+" HTTP/1.1\r\nHost: "+host+
					"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "+
					strconv.Itoa(len(body))+"\r\n\r\n"...)
				req = append(req, body...)
				start := time.Now()
				status, err := roundTrip(conn, rd, req)
				if err != nil {
					conn.Close()
					conn = nil
					bad++
					continue
				}
				if status != http.StatusOK {
					bad++
					continue
				}
				lat = append(lat, time.Since(start))
			}
			if conn != nil {
				conn.Close()
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	res := result{n: len(all), errors: errs, rate: float64(len(all)) / d.Seconds()}
	if len(all) > 0 {
		res.p50 = all[len(all)/2]
		res.p99 = all[len(all)*99/100]
	}
	return res
}

// roundTrip writes one request and reads the response: status line, headers, and a
// Content-Length body.
func roundTrip(conn net.Conn, rd *bufio.Reader, req []byte) (int, error) {
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return 0, err
	}
	parts := strings.SplitN(line, " ", 3)
	if len(parts) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(parts[1])
	length := 0
	for {
		h, err := rd.ReadString('\n')
		if err != nil {
			return 0, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if _, err := rd.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func waitListening(stderr io.Reader) (string, error) {
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, stderr)
			return m[1], nil
		}
	}
	return "", errors.New("supportbot exited before listening")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// peakRSS reads the process's high-water resident set size.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}
