import Testing
@testable import ScoreSDE
@Test func smoke() { #expect(Tensor(zeros: [2, 2]).count == 4) }
