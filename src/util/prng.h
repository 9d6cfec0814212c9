/* Seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 * The sans-I/O core takes randomness only from one of these, seeded by its
 * caller, so that a seed fixes a whole history. Not for cryptography. */
#ifndef HAMOK_UTIL_PRNG_H
#define HAMOK_UTIL_PRNG_H

#include <stdint.h>

typedef struct hamok_prng {
    uint64_t s[4];
} hamok_prng;

void hamok__prng_seed(hamok_prng *p, uint64_t seed);
uint64_t hamok__prng_next(hamok_prng *p);
/* Uniform in [0, bound); bound 0 returns 0. No modulo bias. */
uint64_t hamok__prng_below(hamok_prng *p, uint64_t bound);
/* Uniform in [0, 1). */
double hamok__prng_unit(hamok_prng *p);

#endif
