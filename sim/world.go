package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Categories are the content categories of the world, in a stable order.
var Categories = []string{
	"just-chatting", "music", "fps", "moba", "rpg", "strategy", "sports", "irl",
	"art", "cooking", "fitness", "education", "asmr", "racing", "horror", "card-games",
}

// Languages and their shares of users and streamers.
var (
	Languages      = []string{"en", "es", "pt", "de", "fr", "ja", "ko", "ru"}
	languageShares = []float64{0.45, 0.15, 0.10, 0.08, 0.07, 0.06, 0.05, 0.04}
	countries      = [][]string{{"US", "GB", "CA", "AU"}, {"ES", "MX", "AR"}, {"BR", "PT"}, {"DE", "AT"}, {"FR", "BE"}, {"JP"}, {"KR"}, {"RU"}}
)

// Config sizes and shapes a world. Zero fields take the defaults noted.
type Config struct {
	Seed      uint64
	Users     int       // default 10,000
	Streamers int       // default 1,000
	Start     time.Time // the world's first instant, truncated to a UTC midnight; default 2026-01-01

	// VisitsPerUserDay is the mean number of app visits per user per day (default 1.5).
	VisitsPerUserDay float64
	// StreamDays is the mean share of days a streamer goes live (default 0.6).
	StreamDays float64
	// Habit is the probability that a visiting user who has watched one of
	// the streamers live right now goes back to one of them rather than
	// exploring (default 0.85). With exploration landing on known streamers
	// too, this puts the repeat share around 60-80% once habits form.
	Habit float64
	// Return is the probability that a visiting user none of whose usual
	// streamers is live leaves and comes back when the favourite of them
	// next goes live, as a notification would bring them (default 0.7).
	Return float64
	// Heartbeat is how often a live stream emits stream.heartbeat (default
	// 5m; negative disables).
	Heartbeat time.Duration
	// NewStreamerShare of streamers debut (created_at) during the
	// NewStreamerWindow after Start; the rest exist before Start (defaults
	// 0.03 and 7 days).
	NewStreamerShare  float64
	NewStreamerWindow time.Duration
	// NewUserShare of users sign up (created_at) during the NewUserWindow
	// after Start (default 7 days): they visit from then on only and have
	// no habits before (default 0: every user exists before Start, and
	// the world is as without the option).
	NewUserShare  float64
	NewUserWindow time.Duration

	// Context turns on request context (off by default, so that a world
	// without it is exactly the world of earlier builds: its draws come
	// from random streams of their own). Each user gets a UTC offset (by
	// country) and a usual device, each visit a device (the usual one 3
	// times in 4, else one of the device mix), and Choice.Context carries
	// the visit's local hour and weekday, device, language and country;
	// stream.started events carry the streamer's language. Context shapes
	// behaviour: users explore streamers of another language a third as
	// often (5% of explorations, not 15%) and, when nobody of the chosen
	// category streams in their language, take another category of their
	// taste (then any) in it rather than another language; they watch
	// longer on a TV or a desktop and shorter on a phone (×2, ×1.3, ×0.7;
	// tablets ×1) and on weekends (×1.25), and at local night (0-5 h) go
	// back to a streamer they know whenever one is live (habit 1; by day
	// Habit).
	Context bool
}

func (c *Config) defaults() {
	if c.Users == 0 {
		c.Users = 10000
	}
	if c.Streamers == 0 {
		c.Streamers = 1000
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	c.Start = c.Start.UTC().Truncate(24 * time.Hour)
	if c.VisitsPerUserDay == 0 {
		c.VisitsPerUserDay = 1.5
	}
	if c.StreamDays == 0 {
		c.StreamDays = 0.6
	}
	if c.Habit == 0 {
		c.Habit = 0.85
	}
	if c.Return == 0 {
		c.Return = 0.7
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Minute
	}
	if c.NewStreamerShare == 0 {
		c.NewStreamerShare = 0.03
	}
	if c.NewStreamerWindow == 0 {
		c.NewStreamerWindow = 7 * 24 * time.Hour
	}
	if c.NewUserWindow == 0 {
		c.NewUserWindow = 7 * 24 * time.Hour
	}
}

const (
	tasteTop  = 4 // categories kept per user taste
	chronos   = 4 // chronotypes (groups of users and streamers sharing a daily rhythm)
	slotsPerU = 8 // remembered streamers per user (habit)
	idBase    = 1 // user and streamer ids are idBase + index
	msPerHour = int64(time.Hour / time.Millisecond)
	msPerDay  = 24 * msPerHour
)

// chronoShift is the hour offset of each chronotype's daily curve.
var chronoShift = [chronos]int{0, -3, 2, -8}

// hourCurve is the share of a day's activity falling in each UTC hour for
// chronotype 0: low at night, peaking in the evening.
var hourCurve = func() [24]float64 {
	raw := [24]float64{3, 2, 1.5, 1, 1, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 9, 10, 10, 9, 7, 5}
	var s float64
	for _, x := range raw {
		s += x
	}
	for i := range raw {
		raw[i] /= s
	}
	return raw
}()

func curve(chrono uint8, hour int) float64 {
	return hourCurve[((hour-chronoShift[chrono])%24+24)%24]
}

// World is the static part of a simulated world: who exists, their tastes,
// schedules and habits of mind. It is built once by New and only read
// afterwards, so several Runs may use it concurrently. Memory is a few tens
// of bytes per user and per streamer (struct of arrays).
type World struct {
	cfg Config

	// users
	uTasteCat  [][tasteTop]uint8 // top categories
	uTasteCum  [][tasteTop]float32
	uRate      []float32 // visits per day
	uChrono    []uint8
	uLang      []uint8
	uGenerous  []float32 // probability of gifting in a session
	uCreated   []int64   // unix ms
	uCountry   []uint8
	userPick   [chronos]alias   // by visit rate, within a chronotype
	userOfPos  [chronos][]int32 // alias index → user
	chronoRate [chronos]float64 // visits per day of each chronotype

	// streamers
	sCat       []uint8
	sLang      []uint8
	sQuality   []int64 // popularity weight, heavy-tailed, >= 1
	sHour      []float32
	sDays      []float32 // probability of streaming on a given day
	sCreated   []int64   // unix ms
	sSlot      []int32   // position inside its (category, language) group
	groupOf    []int32   // streamer → group
	groupLen   []int32
	groupStart []int32 // offset of each group in members
	members    []int32 // streamers by group, in slot order

	// context (Config.Context only)
	uOffset []int16 // minutes east of UTC
	uDevice []uint8 // usual device, an index of simDevices
}

// simDevices are the device classes of a world with Context, and
// deviceMix their shares; deviceWatch scales a session's length.
var (
	simDevices  = []lr.Device{lr.DeviceMobile, lr.DeviceDesktop, lr.DeviceTablet, lr.DeviceTV}
	deviceMix   = []float64{0.55, 0.25, 0.10, 0.10}
	deviceWatch = []float64{0.7, 1.3, 1.0, 2.0}
)

// countryOffsets are the UTC offsets (minutes) of each country of
// countries, one drawn per user.
var countryOffsets = map[string][]int16{
	"US": {-300, -360, -480}, "GB": {0}, "CA": {-300, -480}, "AU": {600, 480}, "ES": {60}, "MX": {-360}, "AR": {-180},
	"BR": {-180}, "PT": {0}, "DE": {60}, "AT": {60}, "FR": {60}, "BE": {60}, "JP": {540}, "KR": {540}, "RU": {180, 420},
}

func group(cat, lang uint8) int { return int(cat)*len(Languages) + int(lang) }

// New builds the world of cfg. The same Config gives the same world.
func New(cfg Config) (*World, error) {
	cfg.defaults()
	if cfg.Users < 1 || cfg.Streamers < 1 {
		return nil, lr.Errorf(lr.EINVALID, "sim: need at least one user and one streamer, got %d users and %d streamers", cfg.Users, cfg.Streamers)
	}
	if cfg.Users > math.MaxInt32/2 || cfg.Streamers > math.MaxInt32/2 {
		return nil, lr.Errorf(lr.EINVALID, "sim: at most %d users and streamers", math.MaxInt32/2)
	}
	if cfg.Habit < 0 || cfg.Habit > 1 || cfg.Return < 0 || cfg.Return > 1 || cfg.StreamDays < 0 || cfg.StreamDays > 1 || cfg.NewUserShare < 0 || cfg.NewUserShare > 1 {
		return nil, lr.Errorf(lr.EINVALID, "sim: habit, return, stream-days and new-user share must be in [0, 1]")
	}
	w := &World{cfg: cfg}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed0001))
	langPick := newAlias(languageShares)
	start := cfg.Start.UnixMilli()
	nc := len(Categories)

	// Category popularity: a few categories are much bigger than others.
	catShare := make([]float64, nc)
	for c := range catShare {
		catShare[c] = 1 / math.Pow(float64(c+1), 0.7)
	}
	catPick := newAlias(catShare)

	nu := cfg.Users
	w.uTasteCat = make([][tasteTop]uint8, nu)
	w.uTasteCum = make([][tasteTop]float32, nu)
	w.uRate = make([]float32, nu)
	w.uChrono = make([]uint8, nu)
	w.uLang = make([]uint8, nu)
	w.uGenerous = make([]float32, nu)
	w.uCreated = make([]int64, nu)
	w.uCountry = make([]uint8, nu)
	taste := make([]float64, nc)
	idx := make([]int, nc)
	var rates [chronos][]float64
	for u := 0; u < nu; u++ {
		// Dirichlet(0.3) taste tilted toward popular categories; keep the top few.
		var sum float64
		for c := range taste {
			taste[c] = gamma(r, 0.3) * catShare[c]
			sum += taste[c]
			idx[c] = c
		}
		sort.Slice(idx, func(a, b int) bool { return taste[idx[a]] > taste[idx[b]] })
		var top float64
		for k := 0; k < tasteTop; k++ {
			top += taste[idx[k]]
		}
		var cum float64
		for k := 0; k < tasteTop; k++ {
			cum += taste[idx[k]] / top
			w.uTasteCat[u][k] = uint8(idx[k])
			w.uTasteCum[u][k] = float32(cum)
		}
		w.uTasteCum[u][tasteTop-1] = 1
		w.uRate[u] = float32(cfg.VisitsPerUserDay * lognormal(r, 1, 0.8) / math.Exp(0.32))
		w.uChrono[u] = uint8(r.IntN(chronos))
		w.uLang[u] = uint8(langPick.sample(r))
		w.uCountry[u] = uint8(r.IntN(len(countries[w.uLang[u]])))
		if r.Float64() < 0.12 {
			w.uGenerous[u] = float32(0.05 + 0.3*r.Float64())
		}
		w.uCreated[u] = start - r.Int64N(730*msPerDay) - msPerDay
		c := w.uChrono[u]
		rates[c] = append(rates[c], float64(w.uRate[u]))
		w.userOfPos[c] = append(w.userOfPos[c], int32(u))
	}
	if cfg.NewUserShare > 0 {
		// From a stream of their own, so that the world is otherwise the
		// same as without new users.
		rn := rand.New(rand.NewPCG(cfg.Seed, 0x5eed0004))
		for u := 0; u < nu; u++ {
			if rn.Float64() < cfg.NewUserShare {
				w.uCreated[u] = start + rn.Int64N(cfg.NewUserWindow.Milliseconds()+1)
			}
		}
	}
	for c := range rates {
		w.userPick[c] = newAlias(rates[c])
		for _, x := range rates[c] {
			w.chronoRate[c] += x
		}
	}

	ns := cfg.Streamers
	w.sCat = make([]uint8, ns)
	w.sLang = make([]uint8, ns)
	w.sQuality = make([]int64, ns)
	w.sHour = make([]float32, ns)
	w.sDays = make([]float32, ns)
	w.sCreated = make([]int64, ns)
	w.sSlot = make([]int32, ns)
	w.groupOf = make([]int32, ns)
	w.groupLen = make([]int32, nc*len(Languages))
	hourPick := newAlias(hourCurve[:])
	for s := 0; s < ns; s++ {
		w.sCat[s] = uint8(catPick.sample(r))
		w.sLang[s] = uint8(langPick.sample(r))
		// Pareto(1.3) popularity, capped so one streamer cannot be everything.
		q := math.Pow(1-r.Float64(), -1/1.3)
		w.sQuality[s] = int64(math.Min(q, 2000) * 100)
		ch := uint8(r.IntN(chronos))
		h := (int(hourPick.sample(r)) + chronoShift[ch] + 24) % 24
		w.sHour[s] = float32(h) + float32(r.Float64())
		w.sDays[s] = float32(math.Min(0.98, math.Max(0.1, cfg.StreamDays+0.25*r.NormFloat64())))
		if r.Float64() < cfg.NewStreamerShare {
			w.sCreated[s] = start + r.Int64N(cfg.NewStreamerWindow.Milliseconds()+1)
		} else {
			w.sCreated[s] = start - r.Int64N(1500*msPerDay) - msPerDay
		}
		g := group(w.sCat[s], w.sLang[s])
		w.groupOf[s] = int32(g)
		w.sSlot[s] = w.groupLen[g]
		w.groupLen[g]++
	}
	if cfg.Context {
		// From a stream of its own: the draws above are those of a
		// world without context.
		cr := rand.New(rand.NewPCG(cfg.Seed, 0x5eed0004))
		devPick := newAlias(deviceMix)
		w.uOffset, w.uDevice = make([]int16, nu), make([]uint8, nu)
		for u := 0; u < nu; u++ {
			offs := countryOffsets[countries[w.uLang[u]][w.uCountry[u]]]
			w.uOffset[u] = offs[cr.IntN(len(offs))]
			w.uDevice[u] = uint8(devPick.sample(cr))
		}
	}
	w.groupStart = make([]int32, len(w.groupLen)+1)
	for g, n := range w.groupLen {
		w.groupStart[g+1] = w.groupStart[g] + n
	}
	w.members = make([]int32, ns)
	for s := 0; s < ns; s++ {
		w.members[w.groupStart[w.groupOf[s]]+w.sSlot[s]] = int32(s)
	}
	return w, nil
}

// Config returns the world's configuration with defaults filled in.
func (w *World) Config() Config { return w.cfg }

// UserID and StreamerID give the product id of user index i and streamer
// index i; ids run from 1.
func UserID(i int) lr.UserID         { return lr.UserID(i + idBase) }
func StreamerID(i int) lr.StreamerID { return lr.StreamerID(i + idBase) }

// UserIndex is the index of the user with id (UserID's inverse).
func UserIndex(id lr.UserID) int { return int(id) - idBase }

// User describes one simulated user.
type User struct {
	ID        lr.UserID
	Language  string
	Country   string
	CreatedAt time.Time
	// Taste is the user's latent preference over Categories (zero for the
	// categories outside the user's top few).
	Taste []float64
	// UTCOffset and Device (the usual one) are set in a world with
	// Config.Context only.
	UTCOffset time.Duration
	Device    lr.Device
}

// Streamer describes one simulated streamer.
type Streamer struct {
	ID        lr.StreamerID
	Name      string
	Category  string
	Language  string
	CreatedAt time.Time
	Quality   float64 // relative popularity weight, heavy-tailed, >= 1
}

// Users calls fn for every user in id order; fn's error stops the walk.
func (w *World) Users(fn func(User) error) error {
	for i := range w.uRate {
		if err := fn(w.User(i)); err != nil {
			return err
		}
	}
	return nil
}

// User returns user index i (0 <= i < Users).
func (w *World) User(i int) User {
	l := w.uLang[i]
	t := make([]float64, len(Categories))
	prev := float32(0)
	for k := 0; k < tasteTop; k++ {
		t[w.uTasteCat[i][k]] = float64(w.uTasteCum[i][k] - prev)
		prev = w.uTasteCum[i][k]
	}
	u := User{ID: UserID(i), Language: Languages[l], Country: countries[l][w.uCountry[i]],
		CreatedAt: time.UnixMilli(w.uCreated[i]).UTC(), Taste: t}
	if w.uOffset != nil {
		u.UTCOffset, u.Device = time.Duration(w.uOffset[i])*time.Minute, simDevices[w.uDevice[i]]
	}
	return u
}

// Streamers calls fn for every streamer in id order; fn's error stops the walk.
func (w *World) Streamers(fn func(Streamer) error) error {
	for i := range w.sCat {
		if err := fn(w.Streamer(i)); err != nil {
			return err
		}
	}
	return nil
}

// Streamer returns streamer index i (0 <= i < Streamers).
func (w *World) Streamer(i int) Streamer {
	return Streamer{ID: StreamerID(i), Name: streamerName(w.cfg.Seed, i), Category: Categories[w.sCat[i]],
		Language: Languages[w.sLang[i]], CreatedAt: time.UnixMilli(w.sCreated[i]).UTC(), Quality: float64(w.sQuality[i]) / 100}
}

var syllables = []string{"ka", "zu", "mi", "ro", "ten", "lo", "vex", "ny", "qua", "dra", "pix", "sol", "mo", "ri", "gg", "zen"}

func streamerName(seed uint64, i int) string {
	x := uint64(i)*0x9E3779B97F4A7C15 ^ seed
	b := make([]byte, 0, 16)
	for k := 0; k < 3; k++ {
		b = append(b, syllables[x%uint64(len(syllables))]...)
		x /= uint64(len(syllables))
	}
	return fmt.Sprintf("%s%d", b, i+idBase)
}
