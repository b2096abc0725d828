package experiment

import "math/rand/v2"

// TeamDraft merges two rankings a and b (best first) into one page of at
// most k items by team-draft interleaving (Radlinski, Kurup and Joachims,
// 2008): in each round the team with fewer picks — a coin flip from rng
// when they are even — adds its best item not yet on the page. It returns
// the page and, for each position, the team that contributed it (0 for a,
// 1 for b). When one ranking runs out the other fills the rest of the
// page, credited to its own team. Items are compared with ==; a and b are
// not modified.
func TeamDraft[T comparable](a, b []T, k int, rng *rand.Rand) (page []T, team []int) {
	on := make(map[T]bool, 2*k)
	// peek skips what is already on the page and says whether list has
	// an item left at *i.
	peek := func(list []T, i *int) bool {
		for *i < len(list) && on[list[*i]] {
			*i++
		}
		return *i < len(list)
	}
	ia, ib, na, nb := 0, 0, 0, 0
	for len(page) < k {
		okA, okB := peek(a, &ia), peek(b, &ib)
		if !okA && !okB {
			break
		}
		pickA := okA && (!okB || na < nb || (na == nb && rng.IntN(2) == 0))
		if pickA {
			on[a[ia]] = true
			page, team = append(page, a[ia]), append(team, 0)
			ia++
			na++
		} else {
			on[b[ib]] = true
			page, team = append(page, b[ib]), append(team, 1)
			ib++
			nb++
		}
	}
	return page, team
}
