/* Hand-written C reference for scripts/bench_sweep.py: what this CPU does with the benchmark's
 * workload when a compiler sees the whole step at once.
 *
 * Adam (optax's defaults: b1 0.9, b2 0.999, eps 1e-8) on 2-D Rosenbrock from (-1.2, 1), float32,
 * one lane per learning rate, log-spaced in [1e-4, 1]. Lanes are structure-of-arrays and run in
 * cache-sized tiles; each tile runs every step before the next tile starts (OpenMP threads take
 * whole tiles). Step t evaluates f(x_t) and its gradient together, does gdkit's bookkeeping of
 * x_t (best loss while alive, first step within tol of f* = 0, first step whose |f| exceeds the
 * divergence threshold or is not finite), then applies the update; x_T gets the bookkeeping at
 * the end. Denormals are flushed to zero, as XLA:CPU does.
 *
 * usage: adam_reference LANES STEPS BOOKKEEPING(0|1) OUT.f32
 * prints one JSON line (rate, status counts); writes the final losses to OUT.f32.
 * build:  cc -O3 -march=native -fno-math-errno -fopenmp adam_reference.c -o adam_reference -lm
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xmmintrin.h>

#define TILE 2048
#define NEVER 2147483647

static const float B1 = 0.9f, B2 = 0.999f, EPS = 1e-8f, TOL = 1e-6f, THR_SCALE = 1e12f;

typedef struct {
  float *x, *y, *mx, *my, *vx, *vy, *lr, *best, *thr;
  int *stt, *div;
} Lanes;

static inline float rosenbrock(float x, float y) {
  float r = y - x * x;
  return (1.0f - x) * (1.0f - x) + 100.0f * r * r;
}

/* gdkit's bookkeeping of one lane's loss f at step t */
static inline void book(const Lanes *s, int i, float f, int t) {
  int ok = fabsf(f) <= s->thr[i]; /* false for NaN */
  s->div[i] = (s->div[i] == NEVER && !ok) ? t : s->div[i];
  s->best[i] = (s->div[i] == NEVER && f < s->best[i]) ? f : s->best[i];
  s->stt[i] = f <= TOL ? (s->stt[i] == NEVER ? t : s->stt[i]) : NEVER; /* within tol since */
}

static inline void run_tile(const Lanes *s, int lo, int hi, int steps, int bookkeeping,
                            const float *c1, const float *c2) {
  for (int t = 0; t < steps; t++) {
    const float a1 = c1[t], a2 = c2[t];
#pragma omp simd
    for (int i = lo; i < hi; i++) {
      float x = s->x[i], y = s->y[i];
      float r = y - x * x;
      float gx = -2.0f * (1.0f - x) - 400.0f * x * r, gy = 200.0f * r;
      if (bookkeeping) book(s, i, (1.0f - x) * (1.0f - x) + 100.0f * r * r, t);
      float mx = B1 * s->mx[i] + (1.0f - B1) * gx, my = B1 * s->my[i] + (1.0f - B1) * gy;
      float vx = B2 * s->vx[i] + (1.0f - B2) * gx * gx, vy = B2 * s->vy[i] + (1.0f - B2) * gy * gy;
      s->mx[i] = mx, s->my[i] = my, s->vx[i] = vx, s->vy[i] = vy;
      s->x[i] = x - s->lr[i] * (mx * a1) / (sqrtf(vx * a2) + EPS);
      s->y[i] = y - s->lr[i] * (my * a1) / (sqrtf(vy * a2) + EPS);
    }
  }
  if (bookkeeping)
    for (int i = lo; i < hi; i++) book(s, i, rosenbrock(s->x[i], s->y[i]), steps);
}

/* the two variants, each compiled with the flag known */
static void run_plain(const Lanes *s, int lo, int hi, int steps, const float *c1, const float *c2) {
  run_tile(s, lo, hi, steps, 0, c1, c2);
}
static void run_booked(const Lanes *s, int lo, int hi, int steps, const float *c1, const float *c2) {
  run_tile(s, lo, hi, steps, 1, c1, c2);
}

static float *lane_array(int n) {
  float *p = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
  if (!p) exit(2);
  return p;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s LANES STEPS BOOKKEEPING OUT.f32\n", argv[0]);
    return 2;
  }
  _mm_setcsr(_mm_getcsr() | 0x8040); /* flush-to-zero, denormals-are-zero */
  const int n = atoi(argv[1]), steps = atoi(argv[2]), bookkeeping = atoi(argv[3]);
  Lanes s;
  float **f32[] = {&s.x, &s.y, &s.mx, &s.my, &s.vx, &s.vy, &s.lr, &s.best, &s.thr};
  for (size_t k = 0; k < sizeof f32 / sizeof *f32; k++) *f32[k] = lane_array(n);
  s.stt = (int *)lane_array(n), s.div = (int *)lane_array(n);
  const float f0 = rosenbrock(-1.2f, 1.0f);
  for (int i = 0; i < n; i++) {
    s.x[i] = -1.2f, s.y[i] = 1.0f, s.mx[i] = s.my[i] = s.vx[i] = s.vy[i] = 0.0f;
    s.lr[i] = (float)(1e-4 * pow(1e4, n > 1 ? (double)i / (n - 1) : 0.0));
    s.best[i] = INFINITY, s.thr[i] = THR_SCALE * fmaxf(1.0f, fabsf(f0));
    s.stt[i] = s.div[i] = NEVER;
  }
  float *c1 = lane_array(steps), *c2 = lane_array(steps); /* bias corrections, per step */
  for (int t = 0; t < steps; t++) {
    c1[t] = 1.0f / (1.0f - powf(B1, (float)(t + 1)));
    c2[t] = 1.0f / (1.0f - powf(B2, (float)(t + 1)));
  }

  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
#pragma omp parallel for schedule(static)
  for (int lo = 0; lo < n; lo += TILE) {
    int hi = lo + TILE < n ? lo + TILE : n;
    if (bookkeeping) run_booked(&s, lo, hi, steps, c1, c2);
    else run_plain(&s, lo, hi, steps, c1, c2);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double secs = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);

  long converged = 0, diverged = 0;
  FILE *out = fopen(argv[4], "wb");
  if (!out) return 2;
  for (int i = 0; i < n; i++) {
    float f = rosenbrock(s.x[i], s.y[i]);
    fwrite(&f, sizeof f, 1, out);
    diverged += s.div[i] != NEVER;
    converged += s.div[i] == NEVER && s.stt[i] != NEVER && f <= TOL; /* gdkit's `converged` */
  }
  fclose(out);
  printf("{\"lanes\": %d, \"steps\": %d, \"bookkeeping\": %d, \"threads\": %d, \"seconds\": %.6f, "
         "\"steps_per_s\": %.1f, \"converged\": %ld, \"diverged\": %ld}\n",
         n, steps, bookkeeping, omp_get_max_threads(), secs, (double)n * steps / secs, converged,
         diverged);
  return 0;
}
