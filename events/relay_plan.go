package events

// rowEvent is one event of a batch: event ev of outboxRow row (both indexes).
type rowEvent struct {
	row, ev int
}

// publishGroup is one Publish call: a topic and its events, in order.
type publishGroup struct {
	topic  string
	events []rowEvent
}

// planPublish groups the events of a batch (evs, in envelope id order and emission
// order) into Publish calls. One call per topic when no key has events under two
// topics in the batch (the order of every key is then kept within its single call);
// otherwise one call per run of consecutive events of the same topic, which keeps the
// order of every key across topics.
func planPublish(rows []outboxRow, evs []rowEvent) []publishGroup {
	at := func(re rowEvent) *storedEvent { return &rows[re.row].events[re.ev] }
	mixed := false
	keyTopic := make(map[string]string)
	for _, re := range evs {
		x := at(re)
		if x.key == "" {
			continue
		}
		if t, ok := keyTopic[x.key]; ok && t != x.topic {
			mixed = true
			break
		}
		keyTopic[x.key] = x.topic
	}
	var groups []publishGroup
	if mixed {
		for _, re := range evs {
			t := at(re).topic
			if n := len(groups); n > 0 && groups[n-1].topic == t {
				groups[n-1].events = append(groups[n-1].events, re)
				continue
			}
			groups = append(groups, publishGroup{topic: t, events: []rowEvent{re}})
		}
		return groups
	}
	byTopic := make(map[string]int)
	for _, re := range evs {
		t := at(re).topic
		g, ok := byTopic[t]
		if !ok {
			g = len(groups)
			byTopic[t] = g
			groups = append(groups, publishGroup{topic: t})
		}
		groups[g].events = append(groups[g].events, re)
	}
	return groups
}
