/* berth exec stub: execve(argv[1], &argv[2], envp), exit 127 (ENOENT) or 126 on failure.
 * It runs from a sealed memfd so that, when the container's program is executed,
 * /proc/self/exe is this stub and never the berth-run binary on the host. */
    .globl _start
    .text
_start:
    mov     (%rsp), %rcx            /* argc */
    cmp     $3, %rcx                /* stub, path, argv[0] at least */
    jb      2f
    mov     8(%rsp), %rax           /* argv[0] must be "\001berth-exec": only berth-run calls us */
    cmpb    $1, (%rax)
    jne     2f
    mov     16(%rsp), %rdi          /* argv[1]: resolved path */
    lea     24(%rsp), %rsi          /* &argv[2]: the program's argv */
    lea     16(%rsp,%rcx,8), %rdx   /* envp = &argv[argc+1] */
    mov     $59, %eax               /* execve */
    syscall
    mov     $126, %edi
    cmp     $-2, %rax               /* -ENOENT */
    jne     1f
    mov     $127, %edi
1:  mov     $231, %eax              /* exit_group */
    syscall
2:  mov     $126, %edi
    mov     $231, %eax
    syscall
