import CGSL
import Foundation

/// A ``StepSizeController`` as GSL's step-size control object: a `gsl_odeiv2_control_type` whose
/// `hadjust` measures the stepper's error estimate with the controller's norm and returns its
/// decision (`GSL_ODEIV_HADJ_DEC`: reject and retry with the smaller step; `_INC`: accept and grow;
/// `_NIL`: accept, and the next step is the one written back), and whose `errlevel` (asked by the
/// multistep steppers msadams and msbdf) is the controller's tolerance scale. GSL's evolve loop
/// and steppers are unchanged (GSL manual §27.4, "Adaptive Step-size Control": "you can also
/// define your own control type").
///
/// The C callbacks cannot capture: GSL's `control->state` holds a pointer to this object, which
/// the ``ODEIntegrator`` keeps alive as long as its driver.
final class ODEControl {
    let controller: StepSizeController
    let rowSize: Int
    /// The type table GSL calls through; owned here (GSL keeps only its address).
    private let type: UnsafeMutablePointer<gsl_odeiv2_control_type>
    private let name: UnsafeMutablePointer<CChar>

    init(controller: StepSizeController, rowSize: Int) {
        self.controller = controller
        self.rowSize = max(1, rowSize)
        name = strdup("scoresde")
        type = .allocate(capacity: 1)
        type.initialize(to: gsl_odeiv2_control_type(
            name: name,
            alloc: { calloc(1, MemoryLayout<UnsafeRawPointer>.size) },
            init: { _, _, _, _, _ in GSLStatus.success.rawValue },
            hadjust: { state, dim, ord, y, yerr, _, h in
                ODEControl.from(state).adjust(dimension: dim, order: ord, y: y!, yerr: yerr!, h: h!)
            },
            errlevel: { state, y, _, _, _, errlev in
                errlev!.pointee = ODEControl.from(state).controller.toleranceLevel(y)
                return GSLStatus.success.rawValue
            },
            set_driver: { _, _ in GSLStatus.success.rawValue },
            free: { state in free(state) }))
    }

    deinit {
        type.deinitialize(count: 1)
        type.deallocate()
        free(name)
    }

    /// A GSL control object of this type, its state pointing here (nil if GSL cannot allocate it).
    func makeGSLControl() -> UnsafeMutablePointer<gsl_odeiv2_control>? {
        guard let c = gsl_odeiv2_control_alloc(type), let state = c.pointee.state else { return nil }
        state.storeBytes(of: Unmanaged.passUnretained(self).toOpaque(), as: UnsafeMutableRawPointer.self)
        return c
    }

    private static func from(_ state: UnsafeMutableRawPointer?) -> ODEControl {
        Unmanaged<ODEControl>.fromOpaque(state!.load(as: UnsafeMutableRawPointer.self)).takeUnretainedValue()
    }

    /// GSL's `hadjust`: the controller's norm of `yerr` against the new state `y`, its decision
    /// for a stepper of order `order`, the next step written into `h`.
    private func adjust(dimension: Int, order: UInt32, y: UnsafePointer<Double>, yerr: UnsafePointer<Double>,
                        h: UnsafeMutablePointer<Double>) -> Int32 {
        let state = UnsafeBufferPointer(start: y, count: dimension)
        let error = controller.norm(error: UnsafeBufferPointer(start: yerr, count: dimension), before: state, after: state,
                                    rowSize: rowSize)
        let (accepted, factor) = controller.decide(error: error, order: max(1, Int(order)) - 1)
        if !accepted {
            h.pointee = factor * h.pointee
            return -1   // GSL_ODEIV_HADJ_DEC
        }
        if factor == 1 { return 0 }   // GSL_ODEIV_HADJ_NIL, h unchanged
        h.pointee = factor * h.pointee
        return factor > 1 ? 1 : 0     // GSL_ODEIV_HADJ_INC; an accepted step that shrinks the next is NIL
    }
}
