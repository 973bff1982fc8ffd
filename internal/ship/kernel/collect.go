package kernel

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// collector turns the messages of one execute_request into a Result.
type collector struct {
	max    int  // cap on collected text in bytes
	silent bool // silent cells report no execution count

	text      strings.Builder
	truncated bool
	images    []map[string]string
	data      map[string][]string
	errText   string
	count     *int

	idle        bool // iopub status idle for our request seen
	replied     bool // shell execute_reply seen
	replyStatus string
	replyErr    string
}

// done reports whether all messages of the request have been seen.
func (c *collector) done() bool { return c.idle && c.replied }

func (c *collector) add(m *message) error {
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
		c.errText = strings.Join(s.Traceback, "\n")
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
			c.replyErr = s.Ename + ": " + s.Evalue
		}
		if c.count == nil && !c.silent && s.Status != "aborted" {
			c.count = &s.Count
		}
	}
	return nil
}

// addBundle handles a MIME bundle: image/png goes to images, text/plain to
// the text (for display_data only when there is no image, as upstream), all
// other types to data.
func (c *collector) addBundle(bundle map[string]json.RawMessage, isResult bool) {
	_, hasPNG := bundle["image/png"]
	for mime, raw := range bundle {
		switch mime {
		case "image/png":
			c.images = append(c.images, map[string]string{"image/png": strings.TrimSpace(rawString(raw))})
		case "text/plain":
			if isResult || !hasPNG {
				c.addText(rawString(raw))
			}
		default:
			if c.data == nil {
				c.data = make(map[string][]string)
			}
			c.data[mime] = append(c.data[mime], rawString(raw))
		}
	}
}

// rawString returns a JSON string's value, or the raw JSON of any other value
// (e.g. application/json bundles).
func rawString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

func (c *collector) addText(s string) {
	if c.truncated {
		return
	}
	room := c.max - c.text.Len()
	if len(s) > room {
		c.truncated = true
		if room <= 0 {
			return
		}
		s = s[:room]
		// Do not leave half a UTF-8 sequence at the cut.
		for len(s) > 0 {
			if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	c.text.WriteString(s)
}

// result builds the Result of a cell that ran to completion.
func (c *collector) result() Result {
	r := Result{
		ExecutionCount: c.count,
		Text:           strings.TrimSpace(c.text.String()),
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
