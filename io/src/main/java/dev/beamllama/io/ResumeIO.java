package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import org.apache.beam.sdk.io.Compression;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;

/**
 * The samples an earlier run of the job already wrote ({@link CompletedSample}: id, sample_index and
 * the settings each was generated with), so a job that died part way can be run again on the rest
 * ({@code --resumeFrom}).
 *
 * <p>Reads completion files in either format ({@link RecordFormat#AUTO}: a died job's files are
 * Beam's extension-less temporary shards, {@code .temp-beam-*} under the output directory, told
 * apart by content). Such a file may end in a line cut by the crash: lines that do not parse as a
 * completion are counted ({@code resume_unreadable_lines}) and their samples generated again,
 * never taken as done. A pattern that matches nothing means nothing is done yet. The earlier run's
 * journal ({@link CompletionJournal}, {@code <output>-journal/} under its output directory) is read
 * the same way: its lines are completions, after a header line that is skipped.
 */
public final class ResumeIO {
  public static final String SAMPLES_FOUND = "resume_samples_found";
  public static final String UNREADABLE_LINES = "resume_unreadable_lines";

  private ResumeIO() {}

  public static CompletedSamples completedSamples() {
    return new CompletedSamples(null);
  }

  public static final class CompletedSamples extends PTransform<PBegin, PCollection<CompletedSample>> {
    private final String filepattern;

    private CompletedSamples(String filepattern) {
      this.filepattern = filepattern;
    }

    /** A file, a glob, or a directory (every file under it, Beam's temporary shards included). */
    public CompletedSamples from(String filepattern) {
      return new CompletedSamples(filepattern);
    }

    @Override
    public PCollection<CompletedSample> expand(PBegin input) {
      if (filepattern == null) {
        throw new IllegalStateException("ResumeIO.completedSamples() needs from(filepattern)");
      }
      return input
          .apply("Match", FileIO.match().filepattern(FilePatterns.expandDirectory(filepattern, "**"))
              .withEmptyMatchTreatment(EmptyMatchTreatment.ALLOW))
          .apply("Open", FileIO.readMatches().withCompression(Compression.AUTO))
          .apply("ReadSamples", ParDo.of(new ReadSamplesFn()))
          .setCoder(JsonCoder.of(CompletedSample.class));
    }
  }

  static final class ReadSamplesFn extends DoFn<FileIO.ReadableFile, CompletedSample> {
    private final Counter found = Metrics.counter(ResumeIO.class, SAMPLES_FOUND);
    private final Counter unreadable = Metrics.counter(ResumeIO.class, UNREADABLE_LINES);

    @ProcessElement
    public void process(@Element FileIO.ReadableFile file, OutputReceiver<CompletedSample> out) throws IOException {
      RecordFileReader.of(file, RecordFormat.AUTO).read(Long.MAX_VALUE, new RecordFileReader.Visitor() {
        @Override
        public void record(SourcePosition at, JsonNode row) {
          if (CompletionJournal.isHeader(row)) {
            return;
          }
          if (!CompletionRecord.isWhole(row)) {
            unreadable.inc();
            return;
          }
          found.inc();
          out.output(CompletedSample.of(row));
        }

        @Override
        public void refused(SourcePosition at, ErrorKind kind, String message) {
          unreadable.inc();
        }
      });
    }
  }
}
