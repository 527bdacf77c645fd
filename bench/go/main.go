// Go net/http peer for the tinysse benchmark: the usual Go SSE broadcaster.
//
// GET /events subscribes to every event; POST /events publishes its raw body as one event
// ("data: <body>\n\n") and answers 200 at once. A hub goroutine owns the set of subscribers;
// each subscriber has a buffered channel and its own handler goroutine, which writes each
// event and calls http.Flusher.Flush after it (the approach of the project's seed). When a
// subscriber's channel is full the event is dropped for that subscriber (the loadgen counts
// it as missing).
//
// Port: first argument, else $PORT, else 8080. Listens on 127.0.0.1 only.
package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
)

// Events queued per subscriber before drops: $SUB_BUFFER, default 1024.
var subscriberBuffer = 1024

type hub struct {
	register   chan chan []byte
	unregister chan chan []byte
	publish    chan []byte
}

func newHub() *hub {
	return &hub{
		register:   make(chan chan []byte),
		unregister: make(chan chan []byte),
		publish:    make(chan []byte, 1024),
	}
}

func (h *hub) run() {
	subs := make(map[chan []byte]struct{})
	for {
		select {
		case c := <-h.register:
			subs[c] = struct{}{}
		case c := <-h.unregister:
			if _, ok := subs[c]; ok {
				delete(subs, c)
				close(c)
			}
		case msg := <-h.publish:
			for c := range subs {
				select {
				case c <- msg:
				default: // slow subscriber: drop this event for it
				}
			}
		}
	}
}

// frame encodes a body as one SSE event: one data line per line of the body.
func frame(body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 16)
	body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	for _, line := range bytes.Split(body, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.TrimSuffix(line, []byte("\r")))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func (h *hub) events(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.subscribe(w, r)
	case http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		h.publish <- frame(body)
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *hub) subscribe(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	header := w.Header()
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	c := make(chan []byte, subscriberBuffer)
	h.register <- c
	defer func() {
		// Unregister, draining so the hub never blocks on us meanwhile.
		for {
			select {
			case h.unregister <- c:
				return
			case <-c:
			}
		}
	}()
	done := r.Context().Done()
	for {
		select {
		case <-done:
			return
		case msg, ok := <-c:
			if !ok {
				return
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func main() {
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if port == "" {
		port = "8080"
	}
	if v, err := strconv.Atoi(os.Getenv("SUB_BUFFER")); err == nil && v > 0 {
		subscriberBuffer = v
	}
	h := newHub()
	go h.run()
	mux := http.NewServeMux()
	mux.HandleFunc("/events", h.events)
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux}
	log.Printf("go peer listening on %s", srv.Addr)
	log.Fatal(srv.ListenAndServe())
}
