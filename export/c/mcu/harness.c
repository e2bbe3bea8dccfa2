/* Test harness for a ternkit C export (not part of the model): reads raw float32 samples from input.bin,
   runs tk_quantize and tk_predict on each and writes one record per sample to output.bin:
   TK_CLASSES int32 scores, the predicted class, and (firmware only) the SysTick ticks and the stack bytes
   tk_predict used. On the host it uses stdio; on the Cortex-M4 the same stdio goes through semihosting
   (newlib's rdimon) to files in qemu's working directory. */
#include <stdint.h>
#include <stdio.h>
#include "model.h"

#ifdef TK_FIRMWARE
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define STACK_PAINT 0x5AA5C33Cu

extern uint32_t __stack_limit;
volatile uint32_t tk_systick_wraps;

void SysTick_Handler(void) { tk_systick_wraps++; }

/* ticks of the processor clock since start; SysTick counts down from 2^24 - 1 and wraps into an interrupt */
static uint32_t ticks(void) {
    uint32_t w, v;
    do { w = tk_systick_wraps; v = SYST_CVR; } while (w != tk_systick_wraps);
    return w * 0x1000000u + (0xFFFFFFu - v);
}

static void timer_start(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
}

/* macros, not functions: a call of its own would stack a frame inside the painted area */
#define PAINT(sp) do { for (uint32_t *p_ = &__stack_limit; p_ < (uint32_t *)(sp) - 4; p_++) *p_ = STACK_PAINT; } while (0)
/* the bytes below sp that tk_predict wrote: down to the lowest word whose paint changed */
#define USED(sp, n) do { uint32_t *p_ = &__stack_limit; while (p_ < (uint32_t *)(sp) && *p_ == STACK_PAINT) p_++; \
                         (n) = (sp) - (uint32_t)p_; } while (0)

/* a loop of known length: 2 instructions per iteration (subs, bne), to check what one tick is worth */
static uint32_t known_loop(uint32_t n) {
    uint32_t t0 = ticks();
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return ticks() - t0;
}
#endif

static float raw[TK_INPUTS];
static int8_t q[TK_INPUTS];
static int32_t rec[TK_CLASSES + 3];

int main(void) {
    FILE *in = fopen("input.bin", "rb");
    FILE *out = fopen("output.bin", "wb");
    if (!in || !out) { printf("harness: cannot open input.bin / output.bin\n"); return 3; }
#ifdef TK_FIRMWARE
    timer_start();
    uint32_t empty = 0xFFFFFFFFu;
    for (int i = 0; i < 8; i++) { uint32_t t0 = ticks(); uint32_t d = ticks() - t0; if (d < empty) empty = d; }
    int32_t calib[4] = {(int32_t)empty, (int32_t)known_loop(100000u), 100000 * 2, 0};
    fwrite(calib, sizeof calib, 1, out);
#endif
    long n = 0;
    while (fread(raw, sizeof(float), TK_INPUTS, in) == TK_INPUTS) {
        tk_quantize(raw, q);
#ifdef TK_FIRMWARE
        uint32_t sp, used;
        __asm volatile("mov %0, sp" : "=r"(sp));
        const uint32_t wraps = tk_systick_wraps;
        PAINT(sp);
        uint32_t t0 = ticks();
        rec[TK_CLASSES] = tk_predict(q, rec);
        uint32_t t1 = ticks();
        rec[TK_CLASSES + 1] = (int32_t)(t1 - t0 - empty);
        if (tk_systick_wraps != wraps) { /* the SysTick interrupt stacked its frame inside this call: measure the
                                            stack again, on a call the next wrap (2^24 ticks away) cannot reach */
            PAINT(sp);
            rec[TK_CLASSES] = tk_predict(q, rec);
        }
        USED(sp, used);
        rec[TK_CLASSES + 2] = (int32_t)used;
#else
        rec[TK_CLASSES] = tk_predict(q, rec);
#endif
        if (fwrite(rec, sizeof rec, 1, out) != 1) { printf("harness: write failed\n"); return 3; }
        n++;
    }
    fclose(in);
    fclose(out);
    printf("harness: %ld samples\n", n);
    return 0;
}
