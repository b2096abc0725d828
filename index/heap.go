package index

// cand is a node and its score (dot product with the query: higher is closer).
type cand struct {
	score float32
	id    uint32
}

// better orders candidates best first, ties by lower ordinal, so results are
// deterministic.
func better(a, b cand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// maxHeap keeps the best candidate on top (the frontier of a layer search).
type maxHeap []cand

func (h *maxHeap) push(c cand) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !better(s[i], s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *maxHeap) pop() cand {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && better(s[r], s[l]) {
			m = r
		}
		if !better(s[m], s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// minHeap keeps the worst candidate on top (a bounded result set).
type minHeap []cand

func (h *minHeap) push(c cand) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !better(s[p], s[i]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *minHeap) pop() cand {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && better(s[l], s[r]) {
			m = r
		}
		if !better(s[i], s[m]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// offer adds c to a result set bounded to k entries, dropping the worst.
func (h *minHeap) offer(c cand, k int) {
	if len(*h) < k {
		h.push(c)
		return
	}
	if better(c, (*h)[0]) {
		(*h)[0] = c
		h.fix0()
	}
}

func (h *minHeap) fix0() {
	s := *h
	n := len(s)
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && better(s[l], s[r]) {
			m = r
		}
		if !better(s[i], s[m]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}

// sorted empties h into dst best first.
func (h *minHeap) sorted(dst []cand) []cand {
	n := len(*h)
	start := len(dst)
	for range n {
		dst = append(dst, cand{})
	}
	for i := n - 1; i >= 0; i-- {
		dst[start+i] = h.pop()
	}
	return dst
}
