package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command a failed job's message gives to finish it: resuming from exactly what that job
 * finished (its journal), not from a directory that may hold other jobs' outputs, and for a job that
 * was itself resumed, the same command again, so that the earlier run's samples are not generated twice.
 */
class ResumeHintTest {
  @TempDir Path dir;

  private String hint(String... extra) {
    String[] args = new String[extra.length + 2];
    args[0] = "--input=" + TestJob.root().resolve("samples/chat.jsonl");
    args[1] = "--model=" + TestJob.demoModel();
    System.arraycopy(extra, 0, args, 2, extra.length);
    return Main.resumeHint(args, JobConfig.from(PipelineOptionsFactory.fromArgs(args).as(BeamLlamaOptions.class)));
  }

  @Test
  void aFirstRunResumesFromItsOwnJournalNotFromItsDirectory() {
    // out/ may also hold another job's completions (out/t05-*.jsonl, other settings): they are not this job's.
    String h = hint("--output=" + dir.resolve("out/t09.jsonl"), "--temperature=0.9");
    assertTrue(h.contains("--resumeFrom=" + dir.resolve("out/t09-journal")) && h.contains("--output=" + dir.resolve("out-resumed/t09.jsonl"))
        && h.contains("--temperature=0.9"), h);
  }

  @Test
  void withoutAJournalItResumesFromTheOutputsDirectory() {
    String h = hint("--output=" + dir.resolve("out/c.jsonl"), "--journal=false");
    assertTrue(h.contains("--resumeFrom=" + dir.resolve("out") + " ") || h.endsWith("--resumeFrom=" + dir.resolve("out")), h);
  }

  @Test
  void aResumedRunIsFinishedByTheSameCommandKeepingWhatItResumedFrom() {
    String earlier = "--resumeFrom=" + dir.resolve("run1/c-journal");
    String h = hint("--output=" + dir.resolve("run1-resumed/c.jsonl"), earlier);
    assertTrue(h.contains(earlier) && h.contains("--output=" + dir.resolve("run1-resumed/c.jsonl")) && !h.contains("-resumed-resumed")
        && h.contains("run the same command again"), h);
  }
}
