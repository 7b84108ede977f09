//go:build browser

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive the embedded web client in headless Chromium, as
// a person would: two users in two isolated browser contexts of one
// browser. Chromium is required: without it the tests skip with a clear
// message on a developer machine and fail in CI (CI is set).

const (
	browserStepTimeout = 20 * time.Second
	pollInterval       = 100 * time.Millisecond
)

// chromiumPath finds the browser: $CHROMIUM_PATH, else chromium,
// chromium-browser or google-chrome in PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM_PATH=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	// This tier is asked for explicitly (make test-browser): without a
	// browser it fails rather than pass having tested nothing.
	t.Fatal("browser tests need Chromium: apt-get install chromium (or set CHROMIUM_PATH)")
	return ""
}

// artifactsDir is where screenshots go: $PARLEY_ARTIFACTS_DIR, else a
// temporary directory of the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PARLEY_ARTIFACTS_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBrowser starts one headless Chromium for the test and returns its
// root context; tabs are made from it with newTab.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// tab is one page in its own browser context (its own cookies and
// storage), so two tabs are two independent users.
type tab struct {
	t       *testing.T
	name    string
	ctx     context.Context
	cancel  context.CancelFunc
	dialogs atomic.Int32

	logMu sync.Mutex
	logs  []string // the page's console output and uncaught exceptions
}

func newTab(t *testing.T, browser context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, name: name, ctx: ctx, cancel: cancel}
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s at the end: %s", name, tb.debugState())
		}
	})
	// The first run opens the tab and binds it to the context it is given,
	// so it must get the tab's own context, not one with a step deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	tb.do(chromedp.EmulateViewport(1280, 800))
	// Any JavaScript dialog means user content ran as script (the XSS
	// probe calls alert); count them, and dismiss so the page goes on.
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			tb.log("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			tb.log("exception: " + ev.ExceptionDetails.Text + " " + exceptionDescription(ev.ExceptionDetails.Exception))
		case *page.EventJavascriptDialogOpening:
			tb.dialogs.Add(1)
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	}); err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	return tb
}

func (tb *tab) log(line string) {
	tb.logMu.Lock()
	defer tb.logMu.Unlock()
	tb.logs = append(tb.logs, line)
	if len(tb.logs) > 50 {
		tb.logs = tb.logs[len(tb.logs)-50:]
	}
}

func exceptionDescription(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	return o.Description
}

// do runs actions with a deadline.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", tb.name, err, tb.debugState())
	}
}

// waitFor polls a JavaScript predicate in the page until it is truthy.
func (tb *tab) waitFor(what, predicate string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserStepTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(pollInterval), chromedp.WithPollingTimeout(browserStepTimeout)))
	if err != nil {
		tb.t.Fatalf("%s: waiting for %s: %v\n%s", tb.name, what, err, tb.debugState())
	}
}

// eval evaluates an expression and decodes its value.
func browserEval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

// debugState describes the page for a failure message.
func (tb *tab) debugState() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		url: location.href,
		connection: (document.querySelector('#connection-status')||{}).textContent,
		error: ((document.querySelector('#chat-error')||{}).textContent||'') + ((document.querySelector('#auth-error')||{}).textContent||''),
		title: (document.querySelector('#channel-title')||{}).textContent,
		messages: [...document.querySelectorAll('#messages li')].slice(-8).map(li => (li.dataset.seq||'-') + ':' + li.querySelector('.message-content').textContent + ':' + (li.dataset.status||'')),
	})`))
	tb.logMu.Lock()
	logs := strings.Join(tb.logs, "\n  ")
	tb.logMu.Unlock()
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")\nconsole:\n  " + logs
	}
	return "page state: " + s + "\nconsole:\n  " + logs
}

func (tb *tab) screenshot(dir, name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserStepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", path)
	if os.Getenv("PARLEY_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
}

// login signs in through the page's form.
func (tb *tab) login(baseURL, path, username, password string) {
	tb.t.Helper()
	user, pass, submit := "login-username", "login-password", "login-submit"
	if strings.HasPrefix(path, "/admin") {
		user, pass, submit = "admin-username", "admin-password", "admin-login-submit"
	}
	tb.do(
		chromedp.Navigate(baseURL+path),
		chromedp.WaitVisible(chromedp.ID(user)),
		chromedp.SendKeys(chromedp.ID(user), username),
		chromedp.SendKeys(chromedp.ID(pass), password),
		chromedp.Click(chromedp.ID(submit)),
	)
}

// openChannel clicks a channel in the sidebar and waits for it to load.
func (tb *tab) openChannel(id string) {
	tb.t.Helper()
	sel := fmt.Sprintf(`button[data-channel-id=%q]`, id)
	// Find and click in one step inside the page: the sidebar re-renders
	// as channels and unread counts arrive, so a node found by one CDP
	// call can be gone by the next ("Could not find node with given id").
	tb.waitFor("channel "+id+" in the sidebar, clicked", fmt.Sprintf(
		`(() => { const b = document.querySelector(%q); if (!b) return false; b.click(); return true; })()`, sel))
	tb.waitFor("channel "+id+" open", fmt.Sprintf(`location.pathname === %q && !document.querySelector('#composer').hidden`, "/channels/"+id))
}

// send types a message into the composer and presses Send.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do(
		chromedp.SendKeys(chromedp.ID("composer-input"), text),
		chromedp.Click(chromedp.ID("composer-send")),
	)
}

// hasMessage is a predicate: a message in the list shows exactly text.
func browserHasMessage(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .message-content')].some(n => n.textContent === %s)`, browserJSString(text))
}

func browserJSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// step runs one part of a scenario whose parts depend on each other (so
// they are not subtests: a failure stops the scenario).
func step(t *testing.T, name string, f func()) {
	t.Helper()
	t.Logf("step: %s", name)
	f()
}

// browserUser is a user registered over REST for the browser tests.
type browserUser struct {
	id, name, token string
}

func browserRegister(t *testing.T, base, username string) browserUser {
	t.Helper()
	var a authResponse
	code, raw := call(t, http.MethodPost, base+"/v1/auth/register", "", map[string]string{
		"username": username, "email": username + "@example.com", "password": "browser-pass-1",
		"display_name": strings.ToUpper(username[:1]) + username[1:],
	}, &a)
	if code != http.StatusOK {
		t.Fatalf("register %s = %d %s", username, code, raw)
	}
	return browserUser{id: a.User.ID, name: username, token: a.AccessToken}
}

func browserBefriend(t *testing.T, base string, a, b browserUser) {
	t.Helper()
	for _, p := range [][2]browserUser{{a, b}, {b, a}} {
		if code, raw := call(t, http.MethodPost, base+"/v1/users/me/friends", p[0].token, map[string]string{"user_id": p[1].id}, nil); code != http.StatusOK {
			t.Fatalf("friend %s -> %s = %d %s", p[0].name, p[1].name, code, raw)
		}
	}
}

func browserCreateChannel(t *testing.T, base string, owner browserUser, body map[string]any) string {
	t.Helper()
	var resp struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if code, raw := call(t, http.MethodPost, base+"/v1/channels", owner.token, body, &resp); code != http.StatusOK {
		t.Fatalf("create channel %v = %d %s", body, code, raw)
	}
	return resp.Channel.ID
}

// postMessage sends a message over REST; it is safe to call from any
// goroutine (it reports errors instead of failing the test).
func browserPost(ctx context.Context, base, token, channel, content, clientMsgID string) error {
	b, err := json.Marshal(map[string]string{"content": content, "type": "text", "client_msg_id": clientMsgID})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/channels/"+channel+"/messages", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("send %q: status %d", content, resp.StatusCode)
	}
	return nil
}

func TestBrowserChat(t *testing.T) {
	// The server first, so the browser (a cleanup runs in reverse order)
	// closes its pages before the server is stopped.
	s := startServer(t, t.TempDir(), "--admin-users", "root")
	browser := startBrowser(t)
	base := s.URL
	shots := artifactsDir(t)

	alice := browserRegister(t, base, "alice")
	bob := browserRegister(t, base, "bob")
	carol := browserRegister(t, base, "carol")
	browserRegister(t, base, "root")
	browserBefriend(t, base, alice, bob)
	browserBefriend(t, base, alice, carol)
	general := browserCreateChannel(t, base, alice, map[string]any{"name": "general", "type": "public"})
	for _, u := range []browserUser{bob, carol} {
		if code, raw := call(t, http.MethodPost, base+"/v1/channels/"+general+"/members", u.token, map[string]string{}, nil); code != http.StatusOK {
			t.Fatalf("%s joins general = %d %s", u.name, code, raw)
		}
	}
	if err := browserPost(context.Background(), base, carol.token, general, "Morning! Standup in 10.", "seed-1"); err != nil {
		t.Fatal(err)
	}
	dm := browserCreateChannel(t, base, alice, map[string]any{"type": "private", "member_ids": []string{bob.id}})
	burst := browserCreateChannel(t, base, alice, map[string]any{"name": "burst", "type": "group", "member_ids": []string{bob.id, carol.id}})

	alicePage := newTab(t, browser, "alice")
	bobPage := newTab(t, browser, "bob")
	for _, p := range []struct {
		tab  *tab
		user string
	}{{alicePage, "alice"}, {bobPage, "bob"}} {
		p.tab.login(base, "/", p.user, "browser-pass-1")
		p.tab.waitFor("the chat view", `!document.querySelector('#chat-view').hidden`)
		p.tab.waitFor("the realtime connection", `document.querySelector('#connection-status').dataset.state === 'online'`)
		p.tab.openChannel(dm)
	}

	step(t, "messages both ways", func() {
		alicePage.send("Hi Bob, lunch at noon?")
		bobPage.waitFor("alice's message", browserHasMessage("Hi Bob, lunch at noon?"))
		bobPage.send("Sounds good, see you there!")
		alicePage.waitFor("bob's reply", browserHasMessage("Sounds good, see you there!"))
		// alice's message went sending -> sent -> ... -> read, since bob
		// has the conversation open.
		alicePage.waitFor("read receipt on alice's message",
			`[...document.querySelectorAll('#messages li.mine')].some(li => li.dataset.status === 'read' && li.querySelector('.message-status').textContent === 'Read')`)
	})

	step(t, "typing indicator", func() {
		bobPage.do(chromedp.SendKeys(chromedp.ID("composer-input"), "I am typ"))
		alicePage.waitFor("bob's typing indicator", `document.querySelector('#typing-indicator').textContent === 'Bob is typing…'`)
		browserEval[chromedp.Void](bobPage, `document.querySelector('#composer-input').value = ''`)
	})

	step(t, "user content is text", func() {
		const probe = `<img src=x onerror=alert(1)>`
		alicePage.send(probe)
		for _, p := range []*tab{alicePage, bobPage} {
			p.waitFor("the probe shown as text", browserHasMessage(probe))
			if n := browserEval[int](p, `document.querySelectorAll('#messages img').length`); n != 0 {
				t.Errorf("%s: %d img elements in the message list", p.name, n)
			}
			if d := p.dialogs.Load(); d != 0 {
				t.Errorf("%s: %d JavaScript dialogs opened", p.name, d)
			}
		}
	})

	alicePage.screenshot(shots, "chat-alice.png")
	bobPage.screenshot(shots, "chat-bob.png")

	step(t, "reload keeps history", func() {
		alicePage.do(chromedp.Reload())
		alicePage.waitFor("the chat view after reload", `!document.querySelector('#chat-view').hidden`)
		for _, m := range []string{"Hi Bob, lunch at noon?", "Sounds good, see you there!", `<img src=x onerror=alert(1)>`} {
			alicePage.waitFor("history after reload: "+m, browserHasMessage(m))
		}
		if got := browserEval[string](alicePage, `location.pathname`); got != "/channels/"+dm {
			t.Errorf("after reload the page shows %s, want the open conversation", got)
		}
	})

	step(t, "reload during a burst loses nothing", func() {
		const n = 50
		bobPage.openChannel(burst)
		sent := make(chan int, n)
		done := make(chan error, 1)
		go func() {
			for i := 1; i <= n; i++ {
				if err := browserPost(context.Background(), base, carol.token, burst, fmt.Sprintf("burst %d", i), fmt.Sprintf("burst-%d", i)); err != nil {
					done <- err
					return
				}
				sent <- i
			}
			done <- nil
		}()
		// Reload once the burst is under way, so messages arrive before,
		// during and after the page's reconnect.
		for i := range sent {
			if i >= 10 {
				break
			}
		}
		bobPage.do(chromedp.Reload())
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		bobPage.waitFor("every burst message exactly once, in order", fmt.Sprintf(`(() => {
			const items = [...document.querySelectorAll('#messages li[data-seq]')];
			if (location.pathname !== '/channels/%s' || items.length !== %d) return false;
			return items.every((li, i) => li.dataset.seq === String(i + 1) &&
				li.querySelector('.message-content').textContent === 'burst ' + (i + 1));
		})()`, burst, n))
	})

	step(t, "admin dashboard", func() {
		adminPage := newTab(t, browser, "admin")
		adminPage.login(base, "/admin", "root", "browser-pass-1")
		adminPage.waitFor("the dashboard", `!document.querySelector('#admin-dashboard').hidden`)
		// alice and bob are connected: the live stats count them.
		adminPage.waitFor("live connections", `Number(document.querySelector('#stat-connections').textContent) >= 2 &&
			document.querySelectorAll('#nodes-body tr[data-node-id]').length >= 1`)
		adminPage.waitFor("audit events", `document.querySelectorAll('#events-body tr').length > 0`)
		adminPage.screenshot(shots, "admin-dashboard.png")
		adminPage.cancel()

		// A user without the admin role is told so.
		carolPage := newTab(t, browser, "carol")
		carolPage.login(base, "/admin", "carol", "browser-pass-1")
		carolPage.waitFor("admin role required", `!document.querySelector('#admin-denied').hidden &&
			document.querySelector('#admin-denied').textContent.includes('Admin role required')`)
		carolPage.cancel()
	})

	step(t, "closing a page turns the user offline", func() {
		alicePage.openChannel(dm)
		friend := fmt.Sprintf(`#friend-list li[data-user-id=%q] .presence`, bob.id)
		alicePage.waitFor("bob online", fmt.Sprintf(`document.querySelector(%q)?.dataset.status === 'online'`, friend))
		bobPage.cancel()
		alicePage.waitFor("bob offline in the friend list", fmt.Sprintf(`document.querySelector(%q)?.dataset.status === 'offline'`, friend))
		alicePage.waitFor("bob offline in the conversation header",
			`document.querySelector('#channel-presence .presence')?.dataset.status === 'offline' &&
			 document.querySelector('#channel-presence .presence-text').textContent.startsWith('offline')`)
	})

	if d := alicePage.dialogs.Load(); d != 0 {
		t.Errorf("alice's page opened %d JavaScript dialogs", d)
	}
}
