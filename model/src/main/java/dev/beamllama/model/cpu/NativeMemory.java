package dev.beamllama.model.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.Locale;

/**
 * The CPU engine's large native buffers (the KV cache, int8 weights): fresh anonymous pages from
 * mmap where the OS has it, unmapped when their arena closes. The kernel zeroes them on first
 * touch, so a cache of several GiB neither costs ~0.5 s per GiB of zeroing at start (as
 * {@code Arena.allocate}, which zeroes eagerly, did) nor takes memory before sequences use it.
 * On Linux they are advised as transparent huge pages ({@code MADV_HUGEPAGE}, which systems set
 * to {@code madvise} mode grant only on request): a decode step streams every int8 weight, and
 * 2 MB pages cut its page walks 512-fold (docs/perf.md). Elsewhere, the arena's zeroed memory.
 */
final class NativeMemory {
  private static final String OS = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
  private static final int PROT_READ_WRITE = 0x1 | 0x2;
  private static final int MAP_PRIVATE = 0x02;
  /** MAP_ANONYMOUS: 0x20 on Linux, 0x1000 on macOS; 0 where there is no mmap to call. */
  private static final int MAP_ANONYMOUS = OS.contains("linux") ? 0x20 : OS.contains("mac") ? 0x1000 : 0;
  private static final int MADV_HUGEPAGE = 14;
  private static final Linker LINKER = Linker.nativeLinker();
  private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
  private static final VarHandle ERRNO_VALUE = Linker.Option.captureStateLayout()
      .varHandle(PathElement.groupElement("errno"));
  private static final MethodHandle MMAP = MAP_ANONYMOUS == 0 ? null : LINKER.downcallHandle(
      LINKER.defaultLookup().find("mmap").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
          ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG),
      ERRNO);
  private static final MethodHandle MUNMAP = MAP_ANONYMOUS == 0 ? null : LINKER.downcallHandle(
      LINKER.defaultLookup().find("munmap").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
  private static final MethodHandle MADVISE = !OS.contains("linux") ? null : LINKER.downcallHandle(
      LINKER.defaultLookup().find("madvise").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

  private NativeMemory() {}

  /**
   * {@code bytes} of zeroed memory that lives until {@code arena} closes. {@code what} names it and
   * {@code remedy} says what to change, for the error when the OS refuses the mapping.
   */
  static MemorySegment allocate(long bytes, Arena arena, String what, String remedy) {
    if (MMAP == null) {
      return arena.allocate(bytes, 64);
    }
    MemorySegment state = arena.allocate(Linker.Option.captureStateLayout());
    MemorySegment address;
    try {
      address = (MemorySegment) MMAP.invokeExact(state, MemorySegment.NULL, bytes, PROT_READ_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0L);
    } catch (Throwable t) {
      throw new IllegalStateException("mmap of " + bytes + " bytes for " + what + " failed", t);
    }
    if (address.address() == -1L) { // MAP_FAILED
      throw new IllegalStateException("could not map " + bytes + " bytes for " + what + ": errno "
          + (int) ERRNO_VALUE.get(state, 0L) + "; " + remedy);
    }
    adviseHugePages(address, bytes);
    return address.reinterpret(bytes, arena, start -> unmap(start, bytes));
  }

  /** A refusal (a kernel without transparent huge pages) leaves ordinary pages, which work as well, only slower. */
  private static void adviseHugePages(MemorySegment start, long bytes) {
    if (MADVISE == null) {
      return;
    }
    try {
      int ignored = (int) MADVISE.invokeExact(start, bytes, MADV_HUGEPAGE);
    } catch (Throwable t) {
      throw new IllegalStateException("madvise of " + bytes + " bytes failed", t);
    }
  }

  private static void unmap(MemorySegment start, long bytes) {
    try {
      int ignored = (int) MUNMAP.invokeExact(start, bytes); // at close, a failed unmap has no one to tell
    } catch (Throwable t) {
      throw new IllegalStateException("munmap failed", t);
    }
  }
}
