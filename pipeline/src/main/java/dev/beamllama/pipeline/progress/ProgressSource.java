package dev.beamllama.pipeline.progress;

import java.util.OptionalLong;

/** The live counters a progress display reads: real counts from the running job, never estimates. */
public interface ProgressSource {
  /** Input records finished so far: generated, skipped as already done, or dead letters. */
  long recordsDone();

  /** Tokens generated so far. */
  long tokensGenerated();

  /** The number of input records, once known; empty while it is being counted or when it cannot be. */
  OptionalLong totalRecords();
}
