package dev.beamllama.bench.llamacpp;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * llama.cpp loaded in this JVM through FFM, by way of the small C shim {@code llamacpp_peer.c}
 * ({@code scripts/fetch-llamacpp} builds it): one model and a context for a fixed number of
 * sequences, and greedy batched generation timed inside the native code. Benchmark code only.
 */
public final class LlamaCppPeer implements AutoCloseable {
  /** One generation: each sequence's tokens, and the prefill's and the decode steps' nanoseconds. */
  public record Generation(int[][] tokens, long prefillNanos, long decodeNanos) {}

  private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
  private final Arena arena = Arena.ofShared();
  private final MethodHandle generate;
  private final MethodHandle logits;
  private final MethodHandle close;
  private final MemorySegment handle;
  private final int sequences;
  private final int vocab;

  /**
   * Loads {@code gguf} with the libraries under {@code llamacpp} (the directory fetch-llamacpp made),
   * for up to {@code sequences} sequences of {@code sequenceContext} tokens, on {@code threads} threads.
   */
  public LlamaCppPeer(Path llamacpp, Path gguf, int threads, int sequences, int sequenceContext, int batchCapacity) {
    Path shim = llamacpp.resolve("libllamacpp-peer.so");
    if (!Files.isRegularFile(shim)) {
      throw new IllegalArgumentException(shim + " is missing: run scripts/fetch-llamacpp");
    }
    Linker linker = Linker.nativeLinker();
    SymbolLookup lib = SymbolLookup.libraryLookup(shim, arena);
    MethodHandle open = linker.downcallHandle(lib.findOrThrow("peer_open"), FunctionDescriptor.of(ValueLayout.ADDRESS,
        ValueLayout.ADDRESS, ValueLayout.ADDRESS, INT, INT, INT, INT, ValueLayout.ADDRESS, INT));
    generate = linker.downcallHandle(lib.findOrThrow("peer_generate"), FunctionDescriptor.of(INT,
        ValueLayout.ADDRESS, INT, ValueLayout.ADDRESS, INT, INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
    logits = linker.downcallHandle(lib.findOrThrow("peer_logits"), FunctionDescriptor.of(INT,
        ValueLayout.ADDRESS, ValueLayout.ADDRESS, INT, ValueLayout.ADDRESS));
    close = linker.downcallHandle(lib.findOrThrow("peer_close"), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    this.sequences = sequences;
    try (Arena call = Arena.ofConfined()) {
      MemorySegment error = call.allocate(512);
      handle = (MemorySegment) open.invokeExact(call.allocateFrom(llamacpp.resolve("bin").toString()), call.allocateFrom(gguf.toString()),
          threads, sequences, sequenceContext, batchCapacity, error, 512);
      if (handle.equals(MemorySegment.NULL)) {
        throw new IllegalStateException(error.getString(0));
      }
      vocab = (int) linker.downcallHandle(lib.findOrThrow("peer_vocab"), FunctionDescriptor.of(INT, ValueLayout.ADDRESS)).invokeExact(handle);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  /** Greedy: {@code newTokens} tokens for each prompt (all of one length), all sequences in each decode call. */
  public Generation generate(int[][] prompts, int newTokens) {
    if (prompts.length > sequences) {
      throw new IllegalArgumentException(prompts.length + " prompts, the context holds " + sequences);
    }
    int length = prompts[0].length;
    try (Arena call = Arena.ofConfined()) {
      MemorySegment ids = call.allocate(INT, (long) prompts.length * length);
      for (int s = 0; s < prompts.length; s++) {
        if (prompts[s].length != length) {
          throw new IllegalArgumentException("prompts of different lengths");
        }
        MemorySegment.copy(prompts[s], 0, ids, INT, (long) s * length * Integer.BYTES, length);
      }
      MemorySegment out = call.allocate(INT, (long) prompts.length * newTokens);
      MemorySegment nanos = call.allocate(ValueLayout.JAVA_LONG, 2);
      int rc = (int) generate.invokeExact(handle, prompts.length, ids, length, newTokens, out, nanos);
      if (rc != 0) {
        throw new IllegalStateException("llama_decode failed: " + rc);
      }
      int[][] tokens = new int[prompts.length][];
      for (int s = 0; s < prompts.length; s++) {
        tokens[s] = out.asSlice((long) s * newTokens * Integer.BYTES, (long) newTokens * Integer.BYTES).toArray(INT);
      }
      return new Generation(tokens, nanos.getAtIndex(ValueLayout.JAVA_LONG, 0), nanos.getAtIndex(ValueLayout.JAVA_LONG, 1));
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  /** The logits at every position of {@code prompt} (no longer than the batch capacity). */
  public float[][] promptLogits(int[] prompt) {
    try (Arena call = Arena.ofConfined()) {
      MemorySegment out = call.allocate(ValueLayout.JAVA_FLOAT, (long) prompt.length * vocab);
      int rc = (int) logits.invokeExact(handle, call.allocateFrom(INT, prompt), prompt.length, out);
      if (rc != 0) {
        throw new IllegalStateException("llama_decode failed: " + rc);
      }
      float[][] rows = new float[prompt.length][];
      for (int i = 0; i < prompt.length; i++) {
        rows[i] = out.asSlice((long) i * vocab * Float.BYTES, (long) vocab * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT);
      }
      return rows;
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  @Override
  public void close() {
    try {
      close.invokeExact(handle);
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    } finally {
      arena.close();
    }
  }
}
