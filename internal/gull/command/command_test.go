package command

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		want Line
	}{
		{`open http://web:8000/`, Line{Name: "open", Args: []string{"http://web:8000/"}}},
		{`goto x`, Line{Name: "open", Args: []string{"x"}}},
		{`navigate x`, Line{Name: "open", Args: []string{"x"}}},
		{`--json snapshot -i`, Line{JSON: true, Name: "snapshot", Flags: map[string]string{"i": ""}}},
		{`snapshot -i --json`, Line{JSON: true, Name: "snapshot", Flags: map[string]string{"i": ""}}},
		{`snapshot --interactive -C -s "form#login"`, Line{Name: "snapshot", Flags: map[string]string{"i": "", "C": "", "s": "form#login"}}},
		{`snapshot @e4`, Line{Name: "snapshot", Args: []string{"@e4"}}},
		{`fill @e2 "hello world"`, Line{Name: "fill", Args: []string{"@e2", "hello world"}}},
		{`fill @e2 -5`, Line{Name: "fill", Args: []string{"@e2", "-5"}}},
		{`fill @e2 '--not-a-flag'`, Line{Name: "fill", Args: []string{"@e2", "--not-a-flag"}}},
		{`fill @e2 'it'\''s'`, Line{Name: "fill", Args: []string{"@e2", "it's"}}},
		{`type @e2 "a\"b"`, Line{Name: "type", Args: []string{"@e2", `a"b`}}},
		{`eval "document.querySelectorAll('a').length"`, Line{Name: "eval", Args: []string{"document.querySelectorAll('a').length"}}},
		{`eval "$('a') | x > y && z"`, Line{Name: "eval", Args: []string{"$('a') | x > y && z"}}},
		{`eval 1 + 2`, Line{Name: "eval", Args: []string{"1", "+", "2"}}},
		{`eval "'a\nb'"`, Line{Name: "eval", Args: []string{`'a\nb'`}}},
		{`find text "#1" click`, Line{Name: "find", Sub: "text", Args: []string{"#1", "click"}}},
		{`find role button click --name "Log In"`, Line{Name: "find", Sub: "role", Args: []string{"button", "click"}, Flags: map[string]string{"name": "Log In"}}},
		{`find label "Email" fill "a@b.c"`, Line{Name: "find", Sub: "label", Args: []string{"Email", "fill", "a@b.c"}}},
		{`find nth 2 "li a" click`, Line{Name: "find", Sub: "nth", Args: []string{"2", "li a", "click"}}},
		{`get text body`, Line{Name: "get", Sub: "text", Args: []string{"body"}}},
		{`get attr @e1 href`, Line{Name: "get", Sub: "attr", Args: []string{"@e1", "href"}}},
		{`get title`, Line{Name: "get", Sub: "title"}},
		{`is visible @e1`, Line{Name: "is", Sub: "visible", Args: []string{"@e1"}}},
		{`wait 500`, Line{Name: "wait", Args: []string{"500"}}},
		{`wait --load networkidle`, Line{Name: "wait", Flags: map[string]string{"load": "networkidle"}}},
		{`wait --url "**/dash*"`, Line{Name: "wait", Flags: map[string]string{"url": "**/dash*"}}},
		{`wait --text=Welcome`, Line{Name: "wait", Flags: map[string]string{"text": "Welcome"}}},
		{`screenshot`, Line{Name: "screenshot"}},
		{`screenshot --full /workspace/p.png`, Line{Name: "screenshot", Args: []string{"/workspace/p.png"}, Flags: map[string]string{"full": ""}}},
		{`press Control+a`, Line{Name: "press", Args: []string{"Control+a"}}},
		{`scroll down 500`, Line{Name: "scroll", Args: []string{"down", "500"}}},
		{`tab`, Line{Name: "tab", Sub: "list"}},
		{`tab 2`, Line{Name: "tab", Sub: "select", Args: []string{"2"}}},
		{`tab new http://x/`, Line{Name: "tab", Sub: "new", Args: []string{"http://x/"}}},
		{`dialog accept "yes please"`, Line{Name: "dialog", Sub: "accept", Args: []string{"yes please"}}},
		{`dialog`, Line{Name: "dialog", Sub: "status"}},
		{`cookies`, Line{Name: "cookies", Sub: "get"}},
		{`cookies set sid abc --url http://web:8000/`, Line{Name: "cookies", Sub: "set", Args: []string{"sid", "abc"}, Flags: map[string]string{"url": "http://web:8000/"}}},
		{`storage local`, Line{Name: "storage", Sub: "local"}},
		{`storage local set k "v w"`, Line{Name: "storage", Sub: "local", Args: []string{"set", "k", "v w"}}},
		{`network route "**/api/*" --body '{"ok":true}'`, Line{Name: "network", Sub: "route", Args: []string{"**/api/*"}, Flags: map[string]string{"body": `{"ok":true}`}}},
		{`network requests --filter api`, Line{Name: "network", Sub: "requests", Flags: map[string]string{"filter": "api"}}},
		{`state save /workspace/s.json`, Line{Name: "state", Sub: "save", Args: []string{"/workspace/s.json"}}},
		{`--proxy http://p:3128 open http://x/`, Line{Proxy: "http://p:3128", Name: "open", Args: []string{"http://x/"}}},
		{`click -- -weird`, Line{Name: "click", Args: []string{"-weird"}}},
		{`--proxy socks5://p:1080 get url`, Line{Proxy: "socks5://p:1080", Name: "get", Sub: "url"}},
		{`--proxy off get url`, Line{Proxy: "off", Name: "get", Sub: "url"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := Parse(tt.line)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.Flags == nil {
				tt.want.Flags = map[string]string{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{``, "empty command"},
		{`   `, "empty command"},
		{`open "http://x`, "Close every quote"},
		{`fill @e1 'abc`, "Close every quote"},
		{`open x\`, "unterminated backslash"},
		{`frobnicate now`, `unknown command "frobnicate"`},
		{`open`, "needs 1 argument"},
		{`open a b`, "quote text that contains spaces"},
		{`click`, "click @e3"},
		{`click @e1 --force`, `unknown flag "--force"`},
		{`snapshot -s`, "needs a value"},
		{`snapshot --interactive=yes`, "takes no value"},
		{`get`, "get needs a sub-command"},
		{`get colour @e1`, `got "colour"`},
		{`wait`, "exactly one of"},
		{`wait 5 --text x`, "exactly one of"},
		{`wait --load idle`, "networkidle"},
		{`scroll sideways`, "up, down, left or right"},
		{`scroll down lots`, "not a whole number"},
		{`tab two`, "not a whole number"},
		{`find nth x "a" click`, "not a whole number"},
		{`network route x --abort --body {}`, "exclude each other"},
		{`--session s open x`, "drop the flag"},
		{`--proxy`, "needs a URL"},
		{`--bogus open x`, "unknown global flag"},
		{`--proxy proxy:3128 open x`, "not a proxy URL"},
		{`--proxy "http://p:1 --no-sandbox" open x`, "not a proxy URL"},
		{`--proxy file:///x open x`, "not a proxy URL"},
		{"open \x00", "NUL"},
		{"open \xff", "UTF-8"},
		{`storage local set k`, "set needs a key and a value"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			_, err := Parse(tt.line)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.line)
			}
			if !IsUsage(err) {
				t.Errorf("not a UsageError: %T", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestUsageCoversEveryCommand(t *testing.T) {
	for _, n := range Names() {
		if Usage(n) == "" {
			t.Errorf("%s has no usage text", n)
		}
	}
	if !strings.Contains(Usage("goto"), "open <url>") {
		t.Errorf("alias usage: %q", Usage("goto"))
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`open http://x/`, `fill @e1 "a b"`, `find role button click --name "x"`,
		`eval 'a\'`, `--json snapshot -i -s "#f"`, `wait --text=x`, `tab 3`, `network route * --body '{}'`, `"`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := Parse(line)
		if err != nil {
			if !IsUsage(err) {
				t.Fatalf("error is not a UsageError: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if _, ok := specs[l.Name]; !ok {
			t.Fatalf("parsed to unknown command %q", l.Name)
		}
		if l.Flags == nil {
			t.Fatal("nil flags")
		}
	})
}
