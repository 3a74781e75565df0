package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command a failed job's message gives to finish it: resuming from exactly what that job
 * finished (its journal), not from a directory that may hold other jobs' outputs; for a job that
 * was itself resumed, the same command again, so that the earlier run's samples are not generated
 * twice; and for a job that kept nothing, the same command, since there is nothing to resume from.
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

  /** A file where a died run left one. */
  private Path left(String file) throws IOException {
    Path path = dir.resolve(file);
    Files.createDirectories(path.getParent());
    return Files.writeString(path, "{\"id\": \"a\"}\n");
  }

  @Test
  void aFirstRunResumesFromItsOwnJournalNotFromItsDirectory() throws IOException {
    left("out/t09-journal/partial.jsonl");
    // out/ may also hold another job's completions (out/t05-*.jsonl, other settings): they are not this job's.
    String h = hint("--output=" + dir.resolve("out/t09.jsonl"), "--temperature=0.9");
    assertTrue(h.contains("--resumeFrom=" + dir.resolve("out/t09-journal")) && h.contains("--output=" + dir.resolve("out-resumed/t09.jsonl"))
        && h.contains("--temperature=0.9"), h);
  }

  @Test
  void withoutAJournalItResumesFromTheOutputsDirectory() throws IOException {
    left("out/.temp-beam-0f3a/2c6e9d1a");
    String h = hint("--output=" + dir.resolve("out/c.jsonl"), "--journal=false");
    assertTrue(h.endsWith("--resumeFrom=" + dir.resolve("out")) && h.contains("Without a journal"), h);
  }

  @Test
  void aResumedRunIsFinishedByTheSameCommandKeepingWhatItResumedFrom() throws IOException {
    left("run1/c-journal/partial.jsonl");
    String earlier = "--resumeFrom=" + dir.resolve("run1/c-journal");
    String h = hint("--output=" + dir.resolve("run1-resumed/c.jsonl"), earlier);
    assertTrue(h.contains(earlier) && h.contains("--output=" + dir.resolve("run1-resumed/c.jsonl")) && !h.contains("-resumed-resumed")
        && h.contains("run the same command again"), h);
  }

  @Test
  void resumingFromAnotherRunBesideTheOutputIsAllowedButNotFromTheOutputsOwnFiles() throws IOException {
    left("r/run1-00000-of-00001.jsonl");
    String[] beside = {"--input=" + TestJob.root().resolve("samples/chat.jsonl"), "--model=" + TestJob.demoModel(),
        "--output=" + dir.resolve("r/run.jsonl"), "--resumeFrom=" + dir.resolve("r/run1-*.jsonl")};
    JobConfig.from(PipelineOptionsFactory.fromArgs(beside).as(BeamLlamaOptions.class)); // run1-* are not run-*'s files
    left("r/run-00000-of-00001.jsonl");
    String[] ownFiles = {beside[0], beside[1], beside[2], "--resumeFrom=" + dir.resolve("r")};
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> JobConfig.from(PipelineOptionsFactory.fromArgs(ownFiles).as(BeamLlamaOptions.class)));
    assertTrue(e.getMessage().contains("own --output"), e.getMessage());
  }

  /** The journal's job settings hold the template's text, so a template file edited between two runs is another job. */
  @Test
  void anEditedTemplateFileIsAnotherJob() throws IOException {
    Path template = Files.writeString(dir.resolve("summarize.txt"), "요약: {text}");
    String[] args = {"--input=" + TestJob.root().resolve("samples/summarize.jsonl"), "--model=" + TestJob.demoModel(), "--task=summarize",
        "--output=" + dir.resolve("s/c.jsonl"), "--promptTemplate=" + template};
    String before = JobConfig.from(PipelineOptionsFactory.fromArgs(args).as(BeamLlamaOptions.class)).journal().job().get("prompt_template");
    Files.writeString(template, "세 문장으로 요약: {text}");
    String after = JobConfig.from(PipelineOptionsFactory.fromArgs(args).as(BeamLlamaOptions.class)).journal().job().get("prompt_template");
    assertNotEquals(before, after);
  }

  @Test
  void aRunThatKeptNothingIsRunAgainAsItWas() {
    String h = hint("--output=" + dir.resolve("out/c.jsonl"));
    assertTrue(h.contains("kept no finished sample") && !h.contains("--resumeFrom") && h.contains("--output=" + dir.resolve("out/c.jsonl")), h);
  }
}
