package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"time"
)

// The plot: scrape time (log y) and resident memory (linear y) against
// connections (log x), with the targets as dashed lines.

var (
	colBG    = color.RGBA{255, 255, 255, 255}
	colAxis  = color.RGBA{40, 40, 40, 255}
	colGrid  = color.RGBA{225, 225, 225, 255}
	colCold  = color.RGBA{200, 40, 40, 255}
	colWarm  = color.RGBA{30, 90, 200, 255}
	colP90   = color.RGBA{120, 170, 240, 255}
	colBytes = color.RGBA{130, 60, 170, 255}
	colRSS   = color.RGBA{30, 140, 60, 255}
	colPeak  = color.RGBA{150, 150, 150, 255}
	colLimit = color.RGBA{230, 140, 0, 255}
)

const (
	plotW     = 1200
	plotH     = 560
	textScale = 2
)

type point struct{ x, y float64 }

// panel maps data to pixels inside a rectangle.
type panel struct {
	r          image.Rectangle
	xmin, xmax float64 // log10 of connections
	ymin, ymax float64 // log10 when ylog
	ylog       bool
}

func (p panel) px(x float64) int {
	return p.r.Min.X + int(math.Round((math.Log10(x)-p.xmin)/(p.xmax-p.xmin)*float64(p.r.Dx())))
}

func (p panel) py(y float64) int {
	v := y
	if p.ylog {
		v = math.Log10(y)
	}
	return p.r.Max.Y - int(math.Round((v-p.ymin)/(p.ymax-p.ymin)*float64(p.r.Dy())))
}

func (p panel) inY(y float64) bool {
	if p.ylog && y <= 0 {
		return false
	}
	py := p.py(y)
	return py >= p.r.Min.Y-1 && py <= p.r.Max.Y+1
}

// line draws a segment width pixels wide; dash > 0 leaves gaps.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, width, dash int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for step := 0; ; step++ {
		if dash == 0 || (step/dash)%2 == 0 {
			for wx := 0; wx < width; wx++ {
				for wy := 0; wy < width; wy++ {
					img.Set(x0+wx-width/2, y0+wy-width/2, c)
				}
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src)
}

// series draws a polyline with square markers.
func (p panel) series(img *image.RGBA, pts []point, c color.Color) {
	var prev *image.Point
	for _, pt := range pts {
		if !p.inY(pt.y) {
			prev = nil
			continue
		}
		cur := image.Pt(p.px(pt.x), p.py(pt.y))
		if prev != nil {
			line(img, prev.X, prev.Y, cur.X, cur.Y, c, 3, 0)
		}
		fillRect(img, image.Rect(cur.X-4, cur.Y-4, cur.X+5, cur.Y+5), c)
		prev = &cur
	}
}

// hline draws a dashed horizontal target line with a label.
func (p panel) hline(img *image.RGBA, y float64, label string, c color.Color) {
	if !p.inY(y) {
		return
	}
	yy := p.py(y)
	line(img, p.r.Min.X, yy, p.r.Max.X, yy, c, 2, 8)
	// Left end: series start low there, so the label stays readable.
	drawText(img, p.r.Min.X+8, yy-7*textScale-4, label, textScale, c)
}

// frame draws the axes, x decades and a title.
func (p panel) frame(img *image.RGBA, title string) {
	for e := math.Ceil(p.xmin); e <= p.xmax+1e-9; e++ {
		x := p.px(math.Pow(10, e))
		line(img, x, p.r.Min.Y, x, p.r.Max.Y, colGrid, 1, 0)
		lbl := fmt.Sprintf("%.0f", math.Pow(10, e))
		drawText(img, x-textWidth(lbl, textScale)/2, p.r.Max.Y+10, lbl, textScale, colAxis)
	}
	line(img, p.r.Min.X, p.r.Max.Y, p.r.Max.X, p.r.Max.Y, colAxis, 2, 0)
	line(img, p.r.Min.X, p.r.Min.Y, p.r.Min.X, p.r.Max.Y, colAxis, 2, 0)
	xl := "CONNECTIONS (LOG)"
	drawText(img, (p.r.Min.X+p.r.Max.X-textWidth(xl, textScale))/2, p.r.Max.Y+34, xl, textScale, colAxis)
	drawText(img, p.r.Min.X, p.r.Min.Y-60, title, textScale, colAxis)
}

// legend writes colored names in a row above the panel.
func (p panel) legend(img *image.RGBA, items []string, cols []color.Color) {
	x := p.r.Min.X
	for i, it := range items {
		fillRect(img, image.Rect(x, p.r.Min.Y-32, x+14, p.r.Min.Y-18), cols[i])
		drawText(img, x+20, p.r.Min.Y-32, it, textScale, cols[i])
		x += 20 + textWidth(it, textScale) + 24
	}
}

func msLabel(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gS", v/1000)
	}
	return fmt.Sprintf("%gMS", v)
}

// renderPlot draws scrape times and memory against connections.
func renderPlot(sizes []sizeResult, deadline time.Duration) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fillRect(img, img.Bounds(), colBG)
	if len(sizes) == 0 {
		drawText(img, 40, 40, "NO DATA", textScale, colAxis)
		return img
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	var cold, warm, p90, bytesSent, rss, peak []point
	tmin, tmax := math.Inf(1), float64(deadline.Milliseconds())
	mmax := 250.0
	for _, s := range sizes {
		x := float64(s.Connections)
		xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
		add := func(dst *[]point, d time.Duration) {
			v := float64(d) / float64(time.Millisecond)
			*dst = append(*dst, point{x, v})
			if v > 0 {
				tmin, tmax = math.Min(tmin, v), math.Max(tmax, v)
			}
		}
		add(&cold, s.Cold)
		add(&warm, percentile(s.Warm, 50))
		add(&p90, percentile(s.Warm, 90))
		if len(s.WarmBytes) > 0 {
			add(&bytesSent, percentile(s.WarmBytes, 50))
		}
		r, h := mib(float64(s.Mem.rss())), mib(float64(s.Mem.VmHWM))
		rss = append(rss, point{x, r})
		if h > 0 {
			peak = append(peak, point{x, h})
		}
		mmax = math.Max(mmax, math.Max(r, h))
	}
	tmin = math.Min(tmin, 25)
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	if lx1 <= lx0 {
		lx1 = lx0 + 1
	}
	ly0, ly1 := math.Floor(math.Log10(tmin)), math.Ceil(math.Log10(tmax*1.01))
	if ly1 <= ly0 {
		ly1 = ly0 + 1
	}

	left := panel{r: image.Rect(110, 110, 570, plotH-80), xmin: lx0, xmax: lx1, ymin: ly0, ymax: ly1, ylog: true}
	left.frame(img, "SCRAPE TIME (LOG)")
	for e := ly0; e <= ly1; e++ {
		v := math.Pow(10, e)
		y := left.py(v)
		line(img, left.r.Min.X, y, left.r.Max.X, y, colGrid, 1, 0)
		lbl := msLabel(v)
		drawText(img, left.r.Min.X-textWidth(lbl, textScale)-8, y-7, lbl, textScale, colAxis)
	}
	left.legend(img, []string{"COLD", "WARM", "P90", "LAST BYTE"}, []color.Color{colCold, colWarm, colP90, colBytes})
	left.hline(img, float64(deadline.Milliseconds()), msLabel(float64(deadline.Milliseconds()))+" DEADLINE", colLimit)
	// Issue #17's warm targets: 25 ms at 1,000 connections, 100 ms at 5,000.
	left.hline(img, 100, "100MS (5000)", colLimit)
	left.hline(img, 25, "25MS (1000)", colLimit)
	left.series(img, cold, colCold)
	// Say where the cold scrape left connections unfinished: halfway down
	// to the warm p90, where no series runs.
	for _, s := range sizes {
		ok, total := s.coldOK()
		if ok < total && s.Cold > 0 {
			lbl := fmt.Sprintf("%d/%d OK", ok, total)
			w := textWidth(lbl, textScale)
			x, y := left.px(float64(s.Connections)), left.py(float64(s.Cold)/float64(time.Millisecond))
			ty := y + 36
			if p := percentile(s.Warm, 90); p > 0 {
				ty = (y+left.py(float64(p)/float64(time.Millisecond)))/2 - 7*textScale/2
			}
			drawText(img, min(max(left.r.Min.X+4, x-w/2), left.r.Max.X-4-w), ty, lbl, textScale, colCold)
		}
	}
	left.series(img, p90, colP90)
	left.series(img, warm, colWarm)
	left.series(img, bytesSent, colBytes)

	step := niceStep(mmax * 1.15)
	top := math.Ceil(mmax*1.15/step) * step
	right := panel{r: image.Rect(700, 110, plotW-40, plotH-80), xmin: lx0, xmax: lx1, ymin: 0, ymax: top}
	right.frame(img, "RESIDENT MEMORY (MIB)")
	for v := 0.0; v <= top+1e-9; v += step {
		y := right.py(v)
		line(img, right.r.Min.X, y, right.r.Max.X, y, colGrid, 1, 0)
		lbl := fmt.Sprintf("%g", v)
		drawText(img, right.r.Min.X-textWidth(lbl, textScale)-8, y-7, lbl, textScale, colAxis)
	}
	right.legend(img, []string{"RSS AFTER WARM SCRAPES", "PEAK (VMHWM)"}, []color.Color{colRSS, colPeak})
	right.hline(img, 250, "250 MIB TARGET (5000)", colLimit)
	right.series(img, peak, colPeak)
	right.series(img, rss, colRSS)
	return img
}

// niceStep picks a round tick step giving at most 8 ticks up to top.
func niceStep(top float64) float64 {
	for _, s := range []float64{5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000} {
		if top/s <= 8 {
			return s
		}
	}
	return math.Pow(10, math.Ceil(math.Log10(top/8)))
}

func writePlot(path string, sizes []sizeResult, deadline time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, renderPlot(sizes, deadline)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
