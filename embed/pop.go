package embed

// ItemPop scores an item by how many training interactions it has, the same
// for every user: the popularity baseline of the published tables.
type ItemPop struct {
	Count []float32 // interactions per item id
}

// TrainItemPop counts the training interactions of each of nItems items.
// Values are ignored: each row counts once.
func TrainItemPop(train []Interaction, nItems int) *ItemPop {
	p := &ItemPop{Count: make([]float32, nItems)}
	for _, x := range train {
		if int(x.Item) < nItems {
			p.Count[x.Item]++
		}
	}
	return p
}

// ScoreItems implements Scorer. Unknown items score 0.
func (p *ItemPop) ScoreItems(_ int32, items []int32, out []float32) {
	for i, it := range items {
		out[i] = 0
		if it >= 0 && int(it) < len(p.Count) {
			out[i] = p.Count[it]
		}
	}
}
