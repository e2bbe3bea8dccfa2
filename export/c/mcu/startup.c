/* Bare-metal start-up for qemu's mps2-an386 (Cortex-M4): vector table, data/bss set-up, semihosting
   initialisation, then main(). Faults end the emulation through semihosting (exit status 1). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);
void SysTick_Handler(void);

/* newlib's exit path refers to these; there are no constructors to run */
void _init(void) {}
void _fini(void) {}

static void semihost_exit_error(void) {
    register uint32_t r0 __asm("r0") = 0x18u;     /* SYS_EXIT */
    register uint32_t r1 __asm("r1") = 0x20023u;  /* ADP_Stopped_RunTimeErrorUnknown */
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {}
}

void Default_Handler(void) { semihost_exit_error(); }

void Reset_Handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0u;
    initialise_monitor_handles();
    exit(main());
}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t tk_vectors[16] = {
    (vector_t)(uintptr_t)&__stack_top, Reset_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* NMI..UsageFault */
    0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, /* SVCall, DebugMon, -, PendSV */
    SysTick_Handler,
};
