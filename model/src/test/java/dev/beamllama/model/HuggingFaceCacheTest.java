package dev.beamllama.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hub ids resolved in a Hugging Face cache laid out as huggingface_hub writes it (refs, snapshots
 * of symbolic links into blobs), the environment passed in rather than set on the process.
 */
class HuggingFaceCacheTest {
  static final String ID = "test-org/tiny-llama3";
  static final String COMMIT_A = "0123456789abcdef0123456789abcdef01234567";
  static final String COMMIT_B = "89abcdef0123456789abcdef0123456789abcdef";

  @TempDir Path dir;

  /** A snapshot of the tiny golden checkpoint plus the Llama 3 tokenizer, as links into blobs/. */
  static Path cacheSnapshot(Path hub, String id, String commit, String... files) throws IOException {
    Path repo = hub.resolve("models--" + id.replace("/", "--"));
    Path snapshot = Files.createDirectories(repo.resolve("snapshots").resolve(commit));
    Files.createDirectories(repo.resolve("blobs"));
    for (String file : files) {
      Path source = file.equals(Tokenizer.FILE)
          ? Fixtures.llama3TokenizerDir().resolve(file) : Fixtures.goldenCheckpoint("tiny-llama3-f32").resolve(file);
      String blob = commit.substring(0, 8) + "-" + file;
      Files.copy(source, repo.resolve("blobs").resolve(blob));
      Files.createSymbolicLink(snapshot.resolve(file), Path.of("../../blobs").resolve(blob));
    }
    return snapshot;
  }

  static Path completeSnapshot(Path hub, String id, String commit) throws IOException {
    return cacheSnapshot(hub, id, commit, LlamaConfig.FILE, "generation_config.json", SafetensorsCheckpoint.SINGLE_FILE, Tokenizer.FILE);
  }

  static void ref(Path hub, String id, String name, String commit) throws IOException {
    Path refs = Files.createDirectories(hub.resolve("models--" + id.replace("/", "--")).resolve("refs"));
    Files.writeString(refs.resolve(name), commit); // huggingface_hub writes the hash with no newline
  }

  private HuggingFaceCache cacheAt(Path hfHome) {
    return HuggingFaceCache.fromEnvironment(Map.of("HF_HOME", hfHome.toString()), dir.resolve("home"));
  }

  @Test
  void anIdResolvesThroughRefsMainToASnapshotOfLinksThatLoad() throws Exception {
    Path hub = dir.resolve("hf/hub");
    Path snapshot = completeSnapshot(hub, ID, COMMIT_A);
    ref(hub, ID, "main", COMMIT_A);

    ModelDirectory model = ModelDirectory.open(ID, cacheAt(dir.resolve("hf")));

    assertEquals(snapshot, model.path());
    assertEquals(Optional.of(ID), model.huggingFaceId());
    assertEquals(ID, model.name(), "outputs name the model by its id, not the commit hash");
    assertTrue(Files.isSymbolicLink(model.path().resolve(SafetensorsCheckpoint.SINGLE_FILE)), "the snapshot's links are kept");
    assertEquals(64, model.config().hiddenSize());
    try (SafetensorsCheckpoint weights = model.openWeights()) {
      assertTrue(weights.contains("model.embed_tokens.weight"));
    }
    try (Tokenizer tokenizer = Tokenizer.load(model.path().resolve(Tokenizer.FILE))) {
      assertTrue(tokenizer.vocabularySize() > 128_000);
    }
  }

  @Test
  void theCacheDirectoryFollowsHuggingfaceHub() {
    Path home = dir.resolve("home");
    assertEquals(dir.resolve("a"), HuggingFaceCache.fromEnvironment(
        Map.of("HF_HUB_CACHE", dir.resolve("a").toString(), "HF_HOME", dir.resolve("b").toString()), home).hub());
    assertEquals(dir.resolve("b/hub"), HuggingFaceCache.fromEnvironment(Map.of("HF_HOME", dir.resolve("b").toString()), home).hub());
    assertEquals(home.resolve("hf/hub"), HuggingFaceCache.fromEnvironment(Map.of("HF_HOME", "~/hf"), home).hub());
    assertEquals(dir.resolve("x/huggingface/hub"),
        HuggingFaceCache.fromEnvironment(Map.of("XDG_CACHE_HOME", dir.resolve("x").toString()), home).hub());
    assertEquals(home.resolve(".cache/huggingface/hub"), HuggingFaceCache.fromEnvironment(Map.of(), home).hub());
  }

  @Test
  void anExplicitRevisionIsABranchTagOrCommit() throws Exception {
    Path hub = dir.resolve("hf/hub");
    Path a = completeSnapshot(hub, ID, COMMIT_A);
    Path b = completeSnapshot(hub, ID, COMMIT_B);
    ref(hub, ID, "main", COMMIT_A);
    ref(hub, ID, "v2", COMMIT_B);
    HuggingFaceCache cache = cacheAt(dir.resolve("hf"));

    assertEquals(a, cache.resolve(ID));
    assertEquals(b, cache.resolve(ID + "@v2"));
    assertEquals(b, cache.resolve(ID + "@" + COMMIT_B));
    assertEquals(ID, ModelDirectory.open(ID + "@v2", cache).name());

    String unknown = assertThrows(CheckpointException.class, () -> cache.resolve(ID + "@v3")).getMessage();
    assertTrue(unknown.contains("revision 'v3'") && unknown.contains("main, v2") && unknown.contains(COMMIT_A), unknown);
    assertTrue(unknown.contains("--revision v3"), unknown);
  }

  @Test
  void withoutRefsMainTheOnlySnapshotIsTakenAndSeveralAreAnError() throws Exception {
    Path hub = dir.resolve("hf/hub");
    Path a = completeSnapshot(hub, ID, COMMIT_A);
    HuggingFaceCache cache = cacheAt(dir.resolve("hf"));
    assertEquals(a, cache.resolve(ID));

    completeSnapshot(hub, ID, COMMIT_B);
    String message = assertThrows(CheckpointException.class, () -> cache.resolve(ID)).getMessage();
    assertTrue(message.contains("no refs/main") && message.contains(COMMIT_A) && message.contains(COMMIT_B), message);
    assertTrue(message.contains(ID + "@" + COMMIT_A), "suggests naming one: " + message);
  }

  @Test
  void aModelNotInTheCacheSaysWhereItLookedAndHowToDownloadIt() {
    String message = assertThrows(CheckpointException.class,
        () -> ModelDirectory.open("PathFinderKR/Waktaverse-Llama-3-KO-8B-Instruct", cacheAt(dir.resolve("hf")))).getMessage();
    assertTrue(message.contains(dir.resolve("hf/hub/models--PathFinderKR--Waktaverse-Llama-3-KO-8B-Instruct").toString()), message);
    assertTrue(message.contains("$HF_HOME/hub"), "says which variable chose the cache: " + message);
    assertTrue(message.contains("huggingface-cli download PathFinderKR/Waktaverse-Llama-3-KO-8B-Instruct"), message);
    assertTrue(message.contains("looked for"), message);
    assertTrue(message.contains("neither a local directory"), message);
  }

  @Test
  void anIncompleteSnapshotNamesTheMissingFiles() throws Exception {
    Path hub = dir.resolve("hf/hub");
    cacheSnapshot(hub, ID, COMMIT_A, LlamaConfig.FILE, SafetensorsCheckpoint.SINGLE_FILE);
    ref(hub, ID, "main", COMMIT_A);
    HuggingFaceCache cache = cacheAt(dir.resolve("hf"));
    String noTokenizer = assertThrows(CheckpointException.class, () -> cache.resolve(ID)).getMessage();
    assertTrue(noTokenizer.contains("incomplete") && noTokenizer.contains("lacks tokenizer.json"), noTokenizer);
    assertTrue(noTokenizer.contains("download " + ID), noTokenizer);

    // An interrupted download: the link is there, its blob is not.
    String other = "other-org/tiny";
    Path snapshot = completeSnapshot(hub, other, COMMIT_B);
    ref(hub, other, "main", COMMIT_B);
    Files.delete(snapshot.resolve(SafetensorsCheckpoint.SINGLE_FILE).toRealPath());
    String noWeights = assertThrows(CheckpointException.class, () -> cache.resolve(other)).getMessage();
    assertTrue(noWeights.contains("lacks model.safetensors"), noWeights);
  }

  @Test
  void anExistingLocalDirectoryWinsOverAnIdOfTheSameSpelling() throws Exception {
    // Relative, as a user types it: tests run in the module directory, so the directory goes under target/.
    String spelling = "target/hf-local-wins-" + ProcessHandle.current().pid();
    Path local = Path.of(spelling);
    Path hub = dir.resolve("hf/hub");
    completeSnapshot(hub, spelling, COMMIT_A);
    ref(hub, spelling, "main", COMMIT_A);
    try {
      Files.createDirectories(local);
      Files.copy(Fixtures.goldenCheckpoint("tiny-llama3-f32").resolve(LlamaConfig.FILE), local.resolve(LlamaConfig.FILE));
      ModelDirectory model = ModelDirectory.open(spelling, cacheAt(dir.resolve("hf")));
      assertEquals(local.toAbsolutePath().normalize(), model.path());
      assertFalse(model.huggingFaceId().isPresent());
    } finally {
      try (Stream<Path> files = Files.walk(local)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  @Test
  void onlyNamesThatCannotBePathsAreTakenForIds() {
    for (String id : new String[] {"org/name", "gpt2", "PathFinderKR/Waktaverse-Llama-3-KO-8B-Instruct", "org/name@main",
        "org/name@" + COMMIT_A, "org/v1.5_x@v1.0"}) {
      assertTrue(HuggingFaceCache.isModelId(id), id);
    }
    for (String path : new String[] {"/models/x", "./x", "../x", "~/x", "a/b/c", "org--x/y", "org/..", "org/name@..", "org/name@", ""}) {
      assertFalse(HuggingFaceCache.isModelId(path), path);
    }
    String message = assertThrows(CheckpointException.class,
        () -> ModelDirectory.open(dir.resolve("no-model").toString(), cacheAt(dir.resolve("hf")))).getMessage();
    assertTrue(message.contains("not a checkpoint directory"), "a path that is not an id keeps the plain error: " + message);
  }
}
