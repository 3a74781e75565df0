package dev.beamllama.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A gate that hangs fails here by the timeout rather than hanging the build. */
@Timeout(60)
class OldestBundleFirstTest {
  @Test
  void aFreedCoreGoesToTheOldestWaitingBundleWhateverTheOrderTheyAsked() throws Exception {
    OldestBundleFirst gate = new OldestBundleFirst(1);
    long first = gate.ticket();
    long second = gate.ticket();
    long third = gate.ticket();
    List<Long> ran = new CopyOnWriteArrayList<>();
    CountDownLatch holding = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Thread holder = Thread.ofPlatform().start(() -> gate.run(first, () -> {
      holding.countDown();
      await(release);
    }));
    holding.await();
    // The youngest asks first.
    Thread youngest = Thread.ofPlatform().start(() -> gate.run(third, () -> ran.add(third)));
    awaitWaiting(gate, 1);
    Thread older = Thread.ofPlatform().start(() -> gate.run(second, () -> ran.add(second)));
    awaitWaiting(gate, 2);
    release.countDown();
    for (Thread t : List.of(holder, youngest, older)) {
      t.join();
    }
    assertEquals(List.of(second, third), ran);
  }

  @Test
  void asManyRunAtOnceAsThereAreCoresAndAFailingElementGivesItsCoreBack() throws Exception {
    OldestBundleFirst gate = new OldestBundleFirst(2);
    CountDownLatch bothIn = new CountDownLatch(2);
    CountDownLatch release = new CountDownLatch(1);
    List<Thread> running = List.of(1, 2).stream().map(i -> Thread.ofPlatform().start(() -> gate.run(gate.ticket(), () -> {
      bothIn.countDown();
      await(release);
    }))).toList();
    bothIn.await(); // two at once, or this never returns
    Thread third = Thread.ofPlatform().start(() -> gate.run(gate.ticket(), () -> {}));
    awaitWaiting(gate, 1);
    release.countDown();
    third.join();
    for (Thread t : running) {
      t.join();
    }
    assertThrows(IllegalArgumentException.class, () -> gate.run(gate.ticket(), () -> {
      throw new IllegalArgumentException("bad element");
    }));
    assertThrows(IllegalArgumentException.class, () -> gate.run(gate.ticket(), () -> {
      throw new IllegalArgumentException("bad element");
    }));
    List<Long> ran = new CopyOnWriteArrayList<>();
    Thread a = Thread.ofPlatform().start(() -> gate.run(gate.ticket(), () -> ran.add(1L)));
    Thread b = Thread.ofPlatform().start(() -> gate.run(gate.ticket(), () -> ran.add(2L)));
    a.join();
    b.join();
    assertEquals(2, ran.size(), "both cores were given back after the failures");
    assertEquals(0, gate.waiting());
  }

  private static void awaitWaiting(OldestBundleFirst gate, int count) throws InterruptedException {
    while (gate.waiting() < count) {
      Thread.sleep(1);
    }
  }

  private static void await(CountDownLatch latch) {
    try {
      latch.await();
    } catch (InterruptedException e) {
      throw new IllegalStateException(e);
    }
  }
}
