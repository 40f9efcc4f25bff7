package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bot"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/workhours"
)

// Owners, working hours and response targets (issue 22), played on the desk: the
// events route, the bot and the outbox sent to the fake portal, on both engines.

const secondAgent = 51

// officeDesk is a desk with two agents, working hours Mon-Fri 09:00-18:00 UTC (the
// desk starts on Tuesday 1 December 2026, 09:00) and targets of 1 h for the first
// response and 2 h for a reply.
func officeDesk(t *testing.T) *desk {
	hours := mustHours(t)
	return newDesk(t, func(c *bot.Config) {
		c.Agents = []int64{agentID, secondAgent}
		c.Hours, c.FirstResponseTarget, c.ReplyTarget = hours, time.Hour, 2*time.Hour
	})
}

// targets runs the response targets' sweep at deskStart+since and checks what it did.
func (d *desk) targets(since time.Duration, reminded, missed int) {
	d.t.Helper()
	d.at(since)
	r, m, err := d.bot.ResponseTargets(context.Background(), d.store)
	if err != nil {
		d.t.Fatal(err)
	}
	d.deliver()
	if r != reminded || m != missed {
		d.t.Fatalf("targets at +%v: reminded %d, missed %d; want %d, %d", since, r, m, reminded, missed)
	}
}

func (d *desk) owner(n int) int64 {
	d.t.Helper()
	var owner int64
	dialog := d.dialog(n)
	err := d.store.View(context.Background(), func(tx *storage.Tx) error {
		desk, err := tx.DeskStates(dialog.PortalID) // the owner as /queue reads it
		owner = desk[dialog.ID].Owner
		return err
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return owner
}

// life is dialog n's events of the given kinds, as "kind:actor" (who did it).
func (d *desk) life(n int, kinds ...string) []string {
	d.t.Helper()
	var out []string
	for _, row := range storagetest.Rows(d.t, d.location, `SELECT kind, actor_id FROM dialog_events WHERE dialog_id = $1 ORDER BY id`, d.dialog(n).ID) {
		kind, actor, _ := strings.Cut(row, " ")
		if slices.Contains(kinds, kind) {
			out = append(out, kind+":"+actor)
		}
	}
	return out
}

// lastTo is the bot's last message in user's own chat with it.
func (d *desk) lastTo(user int64) string {
	d.t.Helper()
	msgs := d.portal.Messages(strconv.FormatInt(user, 10))
	if len(msgs) == 0 {
		d.t.Fatalf("no message to %d", user)
	}
	return msgs[len(msgs)-1].Text
}

// TestOwners: the first agent to answer owns the dialog, unannounced; /take, /assign
// (to an agent only) and /release change the owner, each announced in the dialog and
// recorded in its life; /queue names owners and /queue mine keeps the agent's own
// and the unowned.
func TestOwners(t *testing.T) {
	t.Parallel()
	d := officeDesk(t)
	chat := d.open("How do I export deals?")
	d.say(agentID, chat, "Settings → Export.")
	if got := d.owner(1); got != agentID {
		t.Fatalf("owner after the first answer: %d", got)
	}
	d.say(secondAgent, chat, "Also see the docs.")
	if got := d.owner(1); got != agentID {
		t.Fatalf("a second answer took the dialog: owner %d", got)
	}
	if n := len(d.botSaid(chat, "now handled by")); n != 0 {
		t.Fatalf("the first answer's taking was announced %d times", n)
	}

	d.say(secondAgent, chat, "/take")
	if d.owner(1) != secondAgent || len(d.botSaid(chat, "Question #1 is now handled by [USER=51]")) != 1 {
		t.Fatal("/take did not make the agent the owner, announced")
	}
	d.say(secondAgent, chat, "/assign [USER=50]Agent[/USER]")
	if d.owner(1) != agentID || len(d.botSaid(chat, "Question #1 is now handled by [USER=50]")) != 1 {
		t.Fatal("/assign @mention did not give the dialog, announced")
	}
	d.say(agentID, chat, "/assign 99")
	if d.owner(1) != agentID || len(d.botSaid(chat, "#99 is not a support agent")) != 1 {
		t.Fatal("/assign to someone who is no agent was not refused")
	}
	d.say(client, chat, "/take")
	if d.owner(1) != agentID {
		t.Fatal("the client took the dialog")
	}
	// The second line is not in the chat until an escalation: given the dialog, they join.
	const tech = 60
	d.post(privateMessage(client, "en", "/tech add 60"))
	d.say(agentID, chat, "/assign 60")
	adds := d.portal.CallsTo("imbot.chat.user.add")
	if d.owner(1) != tech || len(adds) != 1 || adds[0].Params.String("USERS", "0") != "60" {
		t.Fatalf("/assign to the second line: owner %d, chat.user.add %+v", d.owner(1), adds)
	}
	d.say(agentID, chat, "/take")
	d.say(agentID, chat, "/release")
	if d.owner(1) != 0 || len(d.botSaid(chat, "released question #1")) != 1 {
		t.Fatal("/release did not leave the dialog unowned, announced")
	}
	d.say(agentID, chat, "/release")
	if len(d.botSaid(chat, "This question has no owner.")) != 1 {
		t.Fatal("a second /release was not answered")
	}
	if got, want := d.life(1, storage.LifeOwner), []string{"owner:50", "owner:51", "owner:51", "owner:50", "owner:50", "owner:50"}; !slices.Equal(got, want) {
		t.Fatalf("owner events by %v, want %v", got, want)
	}

	// The queue: dialog 1 (taken by the second agent) and 2 (unowned) wait.
	d.say(secondAgent, chat, "/take")
	d.say(client, chat, "It did not work")
	d.open("Where are my invoices?")
	d.post(privateMessage(agentID, "en", "/queue"))
	all := d.lastTo(agentID)
	if !strings.Contains(all, "owner #51") || !strings.Contains(all, "no owner") {
		t.Fatalf("/queue does not name the owners:\n%s", all)
	}
	d.post(privateMessage(agentID, "en", "/queue mine"))
	mine := d.lastTo(agentID)
	if strings.Contains(mine, "#1 ·") || !strings.Contains(mine, "#2 ·") {
		t.Fatalf("/queue mine:\n%s", mine)
	}
	d.post(privateMessage(secondAgent, "en", "/queue mine"))
	if theirs := d.lastTo(secondAgent); !strings.Contains(theirs, "#1 ·") || !strings.Contains(theirs, "#2 ·") {
		t.Fatalf("/queue mine of the owner:\n%s", theirs)
	}
}

// TestOutOfHoursAnswer: outside the working hours the client's question, and their
// message in a waiting dialog, get one answer per dialog and closed period, in the
// client's language, naming when support is back; inside them, none.
func TestOutOfHoursAnswer(t *testing.T) {
	t.Parallel()
	d := officeDesk(t)
	const back = "Support is closed now"
	d.at(10 * time.Hour) // Tuesday 19:00
	chat := d.open("Is the API down?")
	said := d.botSaid(chat, back)
	if len(said) != 1 || !strings.Contains(said[0].Text, "Wed 2 Dec, 09:00 (UTC)") {
		t.Fatalf("out-of-hours answers %+v", said)
	}
	d.at(11 * time.Hour)
	d.say(client, chat, "Anyone?")
	d.restart()
	d.at(23 * time.Hour) // Wednesday 08:00
	d.say(client, chat, "Hello?")
	if n := len(d.botSaid(chat, back)); n != 1 {
		t.Fatalf("%d out-of-hours answers in one closed period", n)
	}
	d.at(25 * time.Hour) // Wednesday 10:00: open
	d.say(client, chat, "Still here")
	if n := len(d.botSaid(chat, back)); n != 1 {
		t.Fatalf("an out-of-hours answer in working hours (%d)", n)
	}
	d.at(34 * time.Hour) // Wednesday 19:00: the next closed period
	d.say(client, chat, "Evening")
	said = d.botSaid(chat, back)
	if len(said) != 2 || !strings.Contains(said[1].Text, "Thu 3 Dec, 09:00 (UTC)") {
		t.Fatalf("the next period's answer: %+v", said)
	}
	// A Russian client hears it in Russian.
	d.at(35 * time.Hour)
	d.post(privateMessage(client, "ru", "Вопрос по счетам"))
	chats := dialogChats(d.portal)
	if n := len(d.botSaid(chats[len(chats)-1], "Сейчас поддержка не работает")); n != 1 {
		t.Fatalf("%d Russian out-of-hours answers", n)
	}
}

// TestResponseTargetRemindsThenMisses (the reminders speak bot.language, Russian
// here: they are for the agents): a dialog nobody answers is reminded of once at
// 80 % of its target, mentioning every agent (it has no owner), and its miss is told
// and recorded once, though the bot restarts between them and sweeps many times. A
// wait that runs into the evening stops at 18:00 and goes on at 09:00; a reply's
// reminder mentions the owner only. /queue marks waits near and past their target.
func TestResponseTargetRemindsThenMisses(t *testing.T) {
	t.Parallel()
	d := officeDesk(t)
	chat := d.open("The import fails")
	d.targets(0, 0, 0)
	d.targets(47*time.Minute, 0, 0)
	d.targets(48*time.Minute, 1, 0)
	d.targets(48*time.Minute, 0, 0)
	reminders := d.botSaid(chat, "ждёт первого ответа")
	if len(reminders) != 1 || !strings.Contains(reminders[0].Text, "[USER=50]") || !strings.Contains(reminders[0].Text, "[USER=51]") {
		t.Fatalf("reminders %+v", reminders)
	}
	d.post(privateMessage(agentID, "en", "/queue"))
	if q := d.lastTo(agentID); !strings.Contains(q, "near its target") {
		t.Fatalf("/queue at 80 %%:\n%s", q)
	}

	d.restart()
	d.targets(59*time.Minute, 0, 0)
	d.targets(time.Hour, 0, 1)
	d.targets(time.Hour, 0, 0)
	d.restart()
	d.targets(2*time.Hour, 0, 0)
	if n := len(d.botSaid(chat, "пропустило срок первого ответа (1 час")); n != 1 {
		t.Fatalf("%d misses told", n)
	}
	if n := len(d.botSaid(chat, "ждёт первого ответа")); n != 1 {
		t.Fatalf("%d reminders in all", n)
	}
	if got := d.life(1, storage.LifeTargetMissed); len(got) != 1 {
		t.Fatalf("misses recorded: %v", got)
	}
	if n, err := d.store.TargetMisses(context.Background()); err != nil || n != 1 {
		t.Fatalf("misses counted %d, %v", n, err)
	}
	d.post(privateMessage(agentID, "en", "/queue"))
	if q := d.lastTo(agentID); !strings.Contains(q, "past its target") {
		t.Fatalf("/queue past the target:\n%s", q)
	}

	// The answer ends the wait; the client's next message, at 17:30, starts a reply's:
	// 2 h of working time, 30 min of them today, the reminder at 1 h 36 min → Wednesday
	// 10:06, the miss at Wednesday 10:30.
	d.at(3 * time.Hour)
	d.say(agentID, chat, "Which file?")
	d.at(8*time.Hour + 30*time.Minute)
	d.say(client, chat, "deals.csv")
	d.targets(9*time.Hour, 0, 0)
	d.targets(24*time.Hour+66*time.Minute-time.Second, 0, 0) // Wednesday 10:05:59
	d.restart()
	d.targets(24*time.Hour+66*time.Minute, 1, 0)
	replyReminders := d.botSaid(chat, "ждёт ответа")
	if len(replyReminders) != 1 || !strings.Contains(replyReminders[0].Text, "[USER=50]") || strings.Contains(replyReminders[0].Text, "[USER=51]") {
		t.Fatalf("a reply's reminder does not mention its owner alone: %+v", replyReminders)
	}
	d.targets(24*time.Hour+89*time.Minute, 0, 0)
	d.targets(24*time.Hour+90*time.Minute, 0, 1)
}

// TestAnsweredInTimeGetsNone: a dialog answered before 80 % of its target gets no
// reminder and no miss, however long the sweeps go on; nor does one resolved.
func TestAnsweredInTimeGetsNone(t *testing.T) {
	t.Parallel()
	d := officeDesk(t)
	answered := d.open("Reset my password")
	resolved := d.open("Never mind")
	d.targets(10*time.Minute, 0, 0)
	d.at(40 * time.Minute)
	d.say(agentID, answered, "Done.")
	d.say(agentID, resolved, "/close")
	d.targets(48*time.Minute, 0, 0)
	d.restart()
	d.targets(100*time.Hour, 0, 0)
	for _, chat := range []int64{answered, resolved} {
		if n := len(d.botSaid(chat, "срок")); n != 0 {
			t.Fatalf("chat %d got %d target messages", chat, n)
		}
	}
	// /stats: the share within target, and per agent.
	d.post(privateMessage(agentID, "en", "/stats"))
	stats := d.lastTo(agentID)
	for _, want := range []string{"First response: within target 100% (1 of 1)", "#50: owns 1 now · answers 1 · within target 100% (1 of 1)"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats lacks %q:\n%s", want, stats)
		}
	}
}

// TestResponseTargetsOnTwoReplicas: two replicas sweeping the same database at once
// send the reminder, and tell the miss, once between them.
func TestResponseTargetsOnTwoReplicas(t *testing.T) {
	t.Parallel()
	d := officeDesk(t)
	for range 5 {
		d.open("Is the API down?")
	}
	d.targets(0, 0, 0)
	other, err := storage.Open(context.Background(), storagetest.Location(t, d.path), storage.WithClock(d.clock))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherBot := bot.New(bot.Config{Agents: []int64{agentID, secondAgent}, Language: "ru",
		Hours: mustHours(t), FirstResponseTarget: time.Hour, ReplyTarget: 2 * time.Hour}, nil)
	for _, step := range []struct {
		at   time.Duration
		kind string
	}{{48 * time.Minute, "remind"}, {time.Hour, "miss"}} {
		d.at(step.at)
		var wg sync.WaitGroup
		counts := make([][2]int, 2)
		for i, r := range []struct {
			b *bot.Bot
			s *storage.Store
		}{{d.bot, d.store}, {otherBot, other}} {
			wg.Go(func() {
				reminded, missed, err := r.b.ResponseTargets(context.Background(), r.s)
				if err != nil {
					t.Error(err)
				}
				counts[i] = [2]int{reminded, missed}
			})
		}
		wg.Wait()
		reminded, missed := counts[0][0]+counts[1][0], counts[0][1]+counts[1][1]
		if want := map[string][2]int{"remind": {5, 0}, "miss": {0, 5}}[step.kind]; reminded != want[0] || missed != want[1] {
			t.Fatalf("%s: the replicas reminded %d and missed %d (%v), want %v", step.kind, reminded, missed, counts, want)
		}
	}
}

func mustHours(t *testing.T) *workhours.Schedule {
	h, err := workhours.Parse("Mon-Fri 09:00-18:00", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	return h
}
