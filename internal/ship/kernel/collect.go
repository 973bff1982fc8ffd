package kernel

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shipyard/shipyard/internal/ship/jsontext"
)

// maxNotes bounds the "dropped" notes one execution reports; further drops
// are only counted.
const maxNotes = 8

// collector turns the messages of one execute_request into a Result. Every
// output kind is bounded while it arrives, never after: the text (stream and
// text/plain) and the error each by max, each rich MIME entry by max, and
// text, images and rich entries together by total. Sizes are what the value
// costs in Ship's JSON response, so the response stays bounded whatever the
// characters. Text-like values are cut at a rune boundary and marked; base64
// images and other encoded values are never cut: a too-large one is dropped
// and a note says so in the text.
type collector struct {
	max    int  // cap on the text, the error and each rich entry (JSON bytes)
	total  int  // cap on text + images + rich entries of the execution
	silent bool // silent cells report no execution count

	used        int // JSON bytes of text, images and data so far
	text        strings.Builder
	textCost    int // JSON bytes of text
	textOmitted int // bytes of text that did not fit
	truncated   bool
	images      []map[string]string
	data        map[string][]string
	notes       []string
	moreNotes   int
	errText     string
	count       *int

	idle        bool // iopub status idle for our request seen
	replied     bool // shell execute_reply seen
	replyStatus string
	replyErr    string
}

// newCollector returns a collector with the given caps (total < max is
// raised to max).
func newCollector(maxItem, total int, silent bool) collector {
	return collector{max: maxItem, total: max(total, maxItem), silent: silent}
}

// done reports whether all messages of the request have been seen.
func (c *collector) done() bool { return c.idle && c.replied }

func (c *collector) add(m *message) error {
	if m.Dropped > 0 {
		c.addDropped(m)
		return nil
	}
	switch m.Header.MsgType {
	case "status":
		var s struct {
			State string `json:"execution_state"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode status: %w", err)
		}
		if s.State == "idle" {
			c.idle = true
		}
	case "execute_input":
		var s struct {
			Count int `json:"execution_count"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode execute_input: %w", err)
		}
		if !c.silent {
			c.count = &s.Count
		}
	case "stream":
		var s struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode stream: %w", err)
		}
		c.addText(s.Text)
	case "execute_result", "display_data":
		var s struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode %s: %w", m.Header.MsgType, err)
		}
		c.addBundle(s.Data, m.Header.MsgType == "execute_result")
	case "error":
		var s struct {
			Traceback []string `json:"traceback"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode error: %w", err)
		}
		c.errText = c.capError(strings.Join(s.Traceback, "\n"))
	case "execute_reply":
		var s struct {
			Status string `json:"status"`
			Count  int    `json:"execution_count"`
			Ename  string `json:"ename"`
			Evalue string `json:"evalue"`
		}
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return fmt.Errorf("decode execute_reply: %w", err)
		}
		c.replied = true
		c.replyStatus = s.Status
		if s.Status == "error" {
			c.replyErr = c.capError(s.Ename + ": " + s.Evalue)
		}
		if c.count == nil && !c.silent && s.Status != "aborted" {
			c.count = &s.Count
		}
	}
	return nil
}

// addDropped accounts for a message whose content was too large to be
// received at all (see limitConn): it says so, and a dropped error or reply
// still makes the execution fail.
func (c *collector) addDropped(m *message) {
	c.truncated = true
	switch m.Header.MsgType {
	case "error":
		c.errText = fmt.Sprintf("The error output was too large (%d bytes) and was dropped.", m.Dropped)
	case "execute_reply":
		c.replied = true
		c.replyStatus = "error"
		c.replyErr = fmt.Sprintf("The kernel's reply was too large (%d bytes) and was dropped.", m.Dropped)
	case "status", "execute_input":
	default:
		c.note(fmt.Sprintf("%s output of %d bytes dropped", m.Header.MsgType, m.Dropped))
	}
}

// addBundle handles a MIME bundle: image/png goes to images, text/plain to
// the text (for display_data only when there is no image, as upstream), all
// other types to data.
func (c *collector) addBundle(bundle map[string]json.RawMessage, isResult bool) {
	_, hasPNG := bundle["image/png"]
	for mime, raw := range bundle {
		switch mime {
		case "image/png":
			c.addImage(mime, strings.TrimSpace(rawString(raw)))
		case "text/plain":
			if isResult || !hasPNG {
				c.addText(rawString(raw))
			}
		default:
			c.addData(mime, rawString(raw))
		}
	}
}

// entryCost approximates what one list entry costs beyond its value (quotes,
// comma, the object of an image).
const entryCost = 24

func (c *collector) room() int { return c.total - c.used }

func (c *collector) addImage(mime, b64 string) {
	cost := len(b64) + entryCost // base64 is ASCII: no escaping
	if cost > c.room() {
		c.note(fmt.Sprintf("%s output of %d bytes dropped", mime, len(b64)))
		return
	}
	c.used += cost
	c.images = append(c.images, map[string]string{mime: b64})
}

func (c *collector) addData(mime, v string) {
	// The key counts too: a bundle may carry many made-up MIME types.
	overhead := entryCost + jsonLen(mime)
	limit := min(c.max, c.room()-overhead)
	if jsonLen(v) > limit {
		if !cuttable(mime) || limit < 256 {
			c.note(fmt.Sprintf("%s output of %d bytes dropped", mime, len(v)))
			return
		}
		head, omitted := cut(v, limit)
		v = head + marker(omitted)
		c.truncated = true
	}
	c.used += jsonLen(v) + overhead
	if c.data == nil {
		c.data = make(map[string][]string)
	}
	c.data[mime] = append(c.data[mime], v)
}

// cuttable reports whether a value of type mime stays meaningful when cut:
// text, not base64 or JSON.
func cuttable(mime string) bool {
	return strings.HasPrefix(mime, "text/") || mime == "image/svg+xml"
}

func (c *collector) addText(s string) {
	if c.textOmitted > 0 {
		c.textOmitted += len(s)
		return
	}
	limit := min(c.max-c.textCost, c.room())
	n := jsonLen(s)
	if n > limit {
		s, c.textOmitted = cut(s, limit)
		n = jsonLen(s)
		c.truncated = true
	}
	c.used += n
	c.textCost += n
	c.text.WriteString(s)
}

func (c *collector) capError(s string) string {
	if jsonLen(s) <= c.max {
		return s
	}
	c.truncated = true
	head, omitted := cut(s, c.max)
	return head + marker(omitted)
}

// note records that an output was dropped.
func (c *collector) note(s string) {
	c.truncated = true
	if len(c.notes) < maxNotes {
		c.notes = append(c.notes, s)
		return
	}
	c.moreNotes++
}

// marker is the visible mark at a cut.
func marker(omitted int) string {
	return fmt.Sprintf("\n... [output truncated: %d bytes omitted]", omitted)
}

func jsonLen(s string) int { return jsontext.Len(s) }

func cut(s string, limit int) (string, int) { return jsontext.Cut(s, limit) }

// rawString returns a JSON string's value, or the raw JSON of any other value
// (e.g. application/json bundles).
func rawString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

// result builds the Result of a cell that ran to completion.
func (c *collector) result() Result {
	text := strings.TrimSpace(c.text.String())
	if c.textOmitted > 0 {
		text += marker(c.textOmitted)
	}
	if len(c.notes) > 0 {
		notes := c.notes
		if c.moreNotes > 0 {
			notes = append(notes[:len(notes):len(notes)], fmt.Sprintf("%d more outputs dropped", c.moreNotes))
		}
		text = strings.TrimLeft(text+"\n[output truncated: "+strings.Join(notes, "; ")+"]", "\n")
	}
	r := Result{
		ExecutionCount: c.count,
		Text:           text,
		Images:         c.images,
		Data:           c.data,
		Error:          c.errText,
		Truncated:      c.truncated,
	}
	if r.Error == "" {
		switch c.replyStatus {
		case "error":
			r.Error = c.replyErr
		case "aborted":
			r.Error = "Execution aborted"
		}
	}
	r.Success = r.Error == ""
	return r
}
